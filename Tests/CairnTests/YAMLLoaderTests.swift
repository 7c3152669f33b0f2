import CairnManifests
import CairnYAML
import Foundation
import Testing

@Suite struct YAMLLoaderTests {
    @Test func marksAreOneBased() throws {
        let docs = try YAMLLoader.load("a: 1\nb:\n  c: [x, 'y']\n")
        guard case let .mapping(pairs) = docs[0].root.content else { Issue.record("not a mapping"); return }
        #expect(pairs[0].key.mark == YAMLMark(line: 1, column: 1))
        #expect(pairs[1].value.mark == YAMLMark(line: 3, column: 3))
        guard case let .mapping(inner) = pairs[1].value.content, case let .sequence(items) = inner[0].value.content else {
            Issue.record("shape"); return
        }
        #expect(items[1].mark == YAMLMark(line: 3, column: 10))
        #expect(items[1].scalarValue == .string("y"))
    }

    @Test func coreSchemaResolution() throws {
        let text = "[1, -2, 0x1f, 1.5, 1e3, .inf, true, False, null, ~, yes, no, on, '1', 2026-11-20, 1.2.3]"
        let docs = try YAMLLoader.load(text)
        guard case let .sequence(items) = docs[0].root.content else { Issue.record("not a list"); return }
        let values = items.map(\.scalarValue)
        #expect(values[0] == .int(1))
        #expect(values[1] == .int(-2))
        #expect(values[2] == .int(31))
        #expect(values[3] == .double(1.5))
        #expect(values[4] == .double(1000))
        #expect(values[5] == .double(.infinity))
        #expect(values[6] == .bool(true))
        #expect(values[7] == .bool(false))
        #expect(values[8] == .null)
        #expect(values[9] == .null)
        // YAML 1.2: the 1.1 booleans are strings.
        #expect(values[10] == .string("yes"))
        #expect(values[11] == .string("no"))
        #expect(values[12] == .string("on"))
        #expect(values[13] == .string("1"))
        #expect(values[14] == .string("2026-11-20"))
        #expect(values[15] == .string("1.2.3"))
    }

    @Test func explicitTags() throws {
        let docs = try YAMLLoader.load("[!!str 12, !!int '7', !!float 3]")
        guard case let .sequence(items) = docs[0].root.content else { Issue.record("not a list"); return }
        #expect(items.map(\.scalarValue) == [.string("12"), .int(7), .double(3)])
    }

    @Test func multipleDocumentsSkipEmptyOnes() throws {
        let docs = try YAMLLoader.load("# only a comment\n---\na: 1\n---\n---\n# nothing\n---\nb: 2\n")
        #expect(docs.count == 2)
        #expect(docs[0].mark.line == 2)
        #expect(docs[1].mark.line == 7)
    }

    @Test func duplicateKeysAreRejected() {
        #expect {
            _ = try YAMLLoader.load("spec:\n  a: 1\n  b: 2\n  a: 3\n")
        } throws: { error in
            guard let e = error as? YAMLError else { return false }
            return e.mark == YAMLMark(line: 4, column: 3) && e.message.contains("duplicate key 'a' (first defined at 2:3)")
        }
    }

    @Test func aliasesExpand() throws {
        let docs = try YAMLLoader.load("base: &b {x: 1}\nother: *b\n")
        guard case let .mapping(pairs) = docs[0].root.content, case let .mapping(copy) = pairs[1].value.content else {
            Issue.record("shape"); return
        }
        #expect(copy.count == 1)
        #expect(pairs[1].value.mark == YAMLMark(line: 2, column: 8))
    }

    @Test func aliasBombStopsEarly() {
        // Nine levels of nine: 387 million nodes if expanded.
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 {
            let p = "*a\(i - 1)"
            text += "a\(i): &a\(i) [\(Array(repeating: p, count: 9).joined(separator: ", "))]\n"
        }
        #expect {
            _ = try YAMLLoader.load(text)
        } throws: { error in
            (error as? YAMLError)?.message.contains("more than 1000000 nodes") == true
        }
    }

    @Test func depthLimit() {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect {
            _ = try YAMLLoader.load(deep)
        } throws: { error in
            (error as? YAMLError)?.message.contains("nesting deeper than 64") == true
        }
    }

    @Test func sizeLimit() {
        let big = [UInt8](repeating: UInt8(ascii: "a"), count: 100)
        #expect {
            _ = try YAMLLoader.load(big, limits: YAMLLimits(maxBytes: 99))
        } throws: { error in
            (error as? YAMLError)?.message.contains("over the limit of 99 bytes") == true
        }
    }

    @Test func tabsAndBadBytesAreSyntaxErrors() {
        #expect {
            _ = try YAMLLoader.load("a:\n\tb: 1\n")
        } throws: { error in
            guard let e = error as? YAMLError else { return false }
            return e.mark.line == 2 && e.hint.contains("tab")
        }
        #expect {
            _ = try YAMLLoader.load([0x61, 0x3a, 0x20, 0xff, 0xfe, 0x0a])
        } throws: { error in
            (error as? YAMLError)?.hint.contains("UTF-8") == true
        }
    }

    @Test func complexKeysAreRejected() {
        #expect(throws: YAMLError.self) { _ = try YAMLLoader.load("? [a, b]\n: 1\n") }
    }

    @Test func jsonUsesResolvedValues() throws {
        let docs = try YAMLLoader.load("b: {c: .nan}\na: [1, 2.5, true, null, \"q\\\"\", yes]\n")
        #expect(docs[0].root.jsonValue.canonicalText == #"{"a":[1,2.5,true,null,"q\"","yes"],"b":{"c":"nan"}}"#)
    }
}

/// The fuzzer's limit seeds (`Tests/Fuzz/limit_seeds.py`) sit exactly at the loader's limits:
/// one step below and at each limit loads, one step above is refused by that limit.
@Suite struct FuzzLimitSeedTests {
    @Test func limitSeedsSitAtTheLimits() throws {
        let dir = TempDir("cairn-limit-seeds")
        let made = try runProcess("/usr/bin/env", ["python3", packageRoot.appendingPathComponent("Tests/Fuzz/limit_seeds.py").path, dir.path])
        try #require(made.status == 0, "\(made.stderr)")
        let limits = YAMLLimits.default
        for (name, at, refusal) in [("scalar", limits.maxScalarBytes, "over the limit of \(limits.maxScalarBytes) bytes"),
                                    ("nesting", limits.maxDepth, "nesting deeper than \(limits.maxDepth) levels"),
                                    ("file", limits.maxBytes, "over the limit of \(limits.maxBytes) bytes")] {
            for size in [at - 1, at, at + 1] {
                let bytes = [UInt8](try Data(contentsOf: dir.url.appendingPathComponent("\(name)-\(size).yaml")))
                do {
                    _ = try YAMLLoader.load(bytes)
                    #expect(size <= at, "\(name)-\(size) loaded, over the limit")
                } catch {
                    #expect(size > at && error.message.contains(refusal), "\(name)-\(size): \(error.message)")
                }
            }
        }
    }
}
