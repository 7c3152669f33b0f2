#if CAIRN_LIBFUZZER
/// libFuzzer's entry point (built with `-sanitize=fuzzer`; see `make fuzz`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzCheck.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// SwiftPM links an executable's `main` to `<module>_main`; here it hands over to libFuzzer's driver.
@_cdecl("cairn_fuzz_main")
public func cairnFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, fuzzOneInput)
}
#else
import Foundation

/// Without libFuzzer: replays files (or every file in the folders) given as arguments through the
/// same check, so the seed corpus and any crash input can be run with an ordinary build.
@main
struct Replay {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard !arguments.isEmpty else {
            FileHandle.standardError.write(Data("usage: cairn-fuzz FILE-OR-FOLDER...\n".utf8))
            exit(2)
        }
        var inputs = 0, decoded = 0
        for argument in arguments {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("cairn-fuzz: no such file or folder: \(argument)\n".utf8))
                exit(2)
            }
            let files = isDirectory.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: argument).sorted().map { argument + "/" + $0 }
                : [argument]
            for file in files {
                let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
                if FuzzCheck.run(bytes) > 0 { decoded += 1 }
                inputs += 1
            }
        }
        print("cairn-fuzz: \(inputs) inputs replayed, \(decoded) decoded to manifests, the rest gave located diagnostics; no crashes")
    }
}
#endif
