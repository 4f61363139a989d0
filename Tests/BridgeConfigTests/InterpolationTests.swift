import Testing

@testable import BridgeConfig

@Suite("Environment interpolation")
struct InterpolationTests {
    struct Values: Decodable {
        var a: String
        var b: String?
        var port: Int?
    }

    @Test("${VAR} is replaced in values, never in keys")
    func replaced() throws {
        struct Headers: Decodable { var headers: [String: String] }
        let headers = try decode(
            Headers.self, "headers:\n  ${KEY}: Bearer ${TOKEN}\n", environment: ["TOKEN": "t0k", "KEY": "k"]
        )
        #expect(headers.headers == ["${KEY}": "Bearer t0k"])
    }

    @Test("${VAR:-default} uses the default when unset or empty, the value otherwise")
    func defaults() throws {
        let yaml = "a: ${HOST:-localhost}:${PORT:-8080}\nport: ${PORT:-9}\n"
        let unset = try decode(Values.self, yaml)
        #expect(unset.a == "localhost:8080")
        #expect(unset.port == 9)
        let empty = try decode(Values.self, yaml, environment: ["HOST": "", "PORT": ""])
        #expect(empty.a == "localhost:8080")
        let set = try decode(Values.self, yaml, environment: ["HOST": "example.com", "PORT": "443"])
        #expect(set.a == "example.com:443")
        #expect(set.port == 443)
    }

    @Test("$${ is a literal ${, and a lone $ stays")
    func escape() throws {
        let values = try decode(Values.self, "a: 'cost $5, $${NOT_A_VAR} and $$ too'\n")
        #expect(values.a == "cost $5, ${NOT_A_VAR} and $$ too")
    }

    @Test("a set but empty variable is an empty string; for an optional an empty result is nil")
    func empty() throws {
        let values = try decode(
            Values.self, "a: ${EMPTY}\nb: ${EMPTY}\nport: ${UNSET:-}\n", environment: ["EMPTY": ""]
        )
        #expect(values.a == "")
        #expect(values.b == nil)
        #expect(values.port == nil)
        let quoted = try decode(Values.self, "a: x\nb: \"${EMPTY}\"\n", environment: ["EMPTY": ""])
        #expect(quoted.b == "")
    }

    @Test("an unset variable without default is an error at the scalar naming the variable")
    func unset() throws {
        let error = try #require(
            failure(
                GraphSection.self,
                """
                tenant: contoso
                clientSecret: ${GRAPH_CLIENT_SECRET}
                """
            )
        )
        #expect(error.mark == mark(2, 15))
        #expect(
            error.message
                == "environment variable GRAPH_CLIENT_SECRET is not set (set it, or write ${GRAPH_CLIENT_SECRET:-default})"
        )
    }

    @Test("an unset variable is an error for an optional too, not a silent nil")
    func unsetOptional() throws {
        let error = try #require(failure(Values.self, "a: x\nb: ${MISSING}\n"))
        #expect(error.mark == mark(2, 4))
        #expect(error.message.hasPrefix("environment variable MISSING is not set"))
    }

    @Test("an unterminated ${ is an error at the scalar")
    func unterminated() throws {
        let error = try #require(failure(Values.self, "a: 'abc ${HOME'\n"))
        #expect(error.mark == mark(1, 4))
        #expect(error.message.hasPrefix("unterminated '${'"))
    }

    @Test("malformed references are errors")
    func malformed() {
        #expect(Interpolation.expand("${1X}", environment: [:]) == .failure(.badName("1X", reference: "1X")))
        #expect(Interpolation.expand("${X:default}", environment: [:]) == .failure(.malformed("X:default")))
        #expect(Interpolation.expand("${}", environment: [:]) == .failure(.badName("", reference: "")))
        #expect(Interpolation.expand("${A_1:-x}${B}", environment: ["B": "b"]) == .success("xb"))
    }

    @Test("a typed value that fails after substitution shows the text as written, not the secret")
    func noSecretInMessages() throws {
        let error = try #require(failure(Values.self, "a: x\nport: ${SECRET}\n", environment: ["SECRET": "hunter2"]))
        #expect(error.mark == mark(2, 7))
        #expect(error.message.contains("'${SECRET}'"))
        #expect(!error.message.contains("hunter2"))
    }
}
