import CairnCore
import CairnReconcile
import Foundation

extension RegistryDatabase {
    /// Appends `rows` properly chained audit rows spread over `models` (for benchmarks that
    /// need a long history). One transaction; `cairn audit verify` still passes afterwards.
    public func appendSyntheticHistory(rows: Int, models: [String], startingAt at: Int64) throws {
        try sql.write { db in
            let context = AuditContext(revision: String(repeating: "a", count: 40), author: "Bench <bench@example.com>", actor: "bench")
            for i in 0..<rows {
                let model = models[i % models.count]
                try appendAudit(db, at: at + Int64(i), action: .update, address: .model(model), version: nil, before: nil,
                                after: .object(["label": .string("label \(i)")]), reason: "label changed", file: "models/x.yaml",
                                context: context, models: [model])
            }
            try bumpGeneration(db)
        }
    }
}
