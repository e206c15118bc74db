// PaintsTestSupport/ReplySchema: checks that what a daemon actually sent matches Protocol/schema.
import PaintsProtocol
import Testing

public enum ReplySchema {
    /// Records an issue for every schema violation of `reply` (and of its result against the method's result schema).
    public static func check(_ reply: Reply, method: PaintsProtocol.Method? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        var validator = JSONSchemaValidator(directory: Repository.path("Protocol/schema"))
        do {
            let problems = try validator.validate(reply.header, against: "reply.json")
            #expect(problems == [], "reply header: \(reply.header.serializedString())", sourceLocation: sourceLocation)
            if let method, reply.type == .result {
                let resultProblems = try validator.validate(reply.result, against: "results/\(method.rawValue).json")
                #expect(resultProblems == [], "\(method.rawValue) result", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("schema check failed: \(error)", sourceLocation: sourceLocation)
        }
    }
}
