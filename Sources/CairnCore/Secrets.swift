import CSystemCalls
import Foundation

/// The secrets a Cairn process is given, read once at start and then kept out of its
/// environment, so that nothing it starts (a trainer) inherits them and nothing of the same user
/// can read them back from `/proc/<pid>/environ`.
///
/// Each is taken from `NAME_FILE` (a file holding it, as systemd's `LoadCredential=` gives) or,
/// failing that, from `NAME`. The environment variable is then overwritten in place and removed.
public enum Secrets {
    /// `PGPASSWORD` and `CAIRN_DB` (an address may carry a password) open the registry itself:
    /// a trainer holding either could write to it.
    public static let names = ["CAIRN_SIGNING_KEY", "CAIRN_WEBHOOK_SECRET", "CAIRN_GIT_TOKEN", "CAIRN_TOKEN", "PGPASSWORD", "CAIRN_DB"]

    /// Name → value, captured on first use (`ProcessHardening.apply()` makes that the start).
    public static let captured: [String: String] = capture()

    public static func value(_ name: String) -> String? { captured[name] }

    static func capture() -> [String: String] {
        var found: [String: String] = [:]
        for name in names {
            if let file = getenv(name + "_FILE").map({ String(cString: $0) }), !file.isEmpty,
               let data = FileManager.default.contents(atPath: file) {
                found[name] = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            } else if let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty {
                found[name] = value
            }
            scrub(name)
        }
        return found
    }

    /// Overwrites `NAME=value` where the kernel shows it (`/proc/<pid>/environ` reads the
    /// process's first environment block, which `unsetenv` alone leaves in place), then removes it.
    static func scrub(_ name: String) {
        var entry = environ
        let prefix = Array((name + "=").utf8)
        while let pointer = entry.pointee {
            var matches = true
            for (i, byte) in prefix.enumerated() where UInt8(bitPattern: pointer[i]) != byte {
                matches = false
                break
            }
            if matches {
                var i = prefix.count
                while pointer[i] != 0 {
                    pointer[i] = CChar(UInt8(ascii: "x"))
                    i += 1
                }
            }
            entry += 1
        }
        unsetenv(name)
    }
}

/// What every `cairn` process does first: it becomes non-dumpable (same-user processes cannot
/// read its memory, environment or open files through /proc, nor attach to it) and takes its
/// secrets out of its environment.
public enum ProcessHardening {
    public static func apply() {
        _ = cairn_set_nondumpable()
        _ = Secrets.captured
    }

    public static var isDumpable: Bool { cairn_is_dumpable() == 1 }
}
