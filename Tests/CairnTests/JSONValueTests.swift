import CairnCore
import CairnGit
import CairnManifests
import Foundation
import Testing

@Suite struct JSONValueTests {
    /// Every manifest of the example fleet survives Encodable → JSONValue → Decodable unchanged,
    /// and decodes to what JSONDecoder makes of the same JSON text.
    @Test func decoderAgreesWithJSONDecoderOnTheExampleFleet() throws {
        let repo = try GitFixture()
        try repo.copyExamples()
        try repo.commit("fleet")
        let manifests = ManifestLoader.load(try GitRepository(path: repo.path).snapshot(revision: "HEAD")).manifests
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        func check<T: Codable>(_ values: [T]) throws {
            #expect(!values.isEmpty)
            for value in values {
                let json = JSONValue.from(value)
                let direct = try json.decode(T.self)
                let viaText = try JSONDecoder().decode(T.self, from: try encoder.encode(json))
                #expect(try encoder.encode(direct) == encoder.encode(value))
                #expect(try encoder.encode(direct) == encoder.encode(viaText))
            }
        }
        try check(manifests.models)
        try check(manifests.templates)
        try check(manifests.outcomeWeights)
        try check(manifests.servingTargets)
    }

    @Test func numbersAndErrorsFollowJSONDecoder() throws {
        struct Sample: Codable, Equatable {
            var count: Int
            var ratio: Double
            var name: String?
            var tags: [String: Int]
        }
        let value = JSONValue.object(["count": .double(3), "ratio": .int(2), "tags": .object(["a": .int(1)])])
        #expect(try value.decode(Sample.self) == Sample(count: 3, ratio: 2, name: nil, tags: ["a": 1]))
        #expect(throws: DecodingError.self) { try JSONValue.object(["count": .double(3.5), "ratio": .int(1), "tags": .object([:])]).decode(Sample.self) }
        #expect(throws: DecodingError.self) { try JSONValue.object(["ratio": .int(1), "tags": .object([:])]).decode(Sample.self) }
        #expect(throws: DecodingError.self) { try JSONValue.string("x").decode([Int].self) }
    }
}
