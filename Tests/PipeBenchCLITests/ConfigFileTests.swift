import Testing
@testable import PipeHarness

@Suite struct ConfigFileTests {
    @Test func tomlSubset() throws {
        let text = """
        # A sweep of pipe_mindirect
        transport = ["engine", "linux-pipe"]   # both
        write_size = "64,4K..1M"
        repetitions = 5

        [engine]
        mindirect = [
            "4K",
            "8K",   # the default
            '16K',
        ]
        piperesize = false
        wait = "spin:5us"

        [placement]
        writer-cpu = 0
        reader-cpu = 1_0
        [workload]
        rate = 1.5e3
        """
        let entries = try SweepConfigFile.parseTOML(text, name: "t.toml")
        try SweepConfigFile.checkKeys(entries, name: "t.toml")
        func value(_ key: String) -> ConfigValue? { entries.first { $0.key == key }?.value }
        #expect(value("transport") == .array([.string("engine"), .string("linux-pipe")]))
        #expect(value("write_size") == .string("64,4K..1M"))
        #expect(value("repetitions") == .integer(5))
        #expect(value("mindirect") == .array([.string("4K"), .string("8K"), .string("16K")]))
        #expect(value("piperesize") == .bool(false))
        #expect(value("reader-cpu") == .integer(10))
        #expect(value("rate") == .number(1500))
        #expect(entries.first { $0.key == "mindirect" }?.table == "engine")
        #expect(entries.first { $0.key == "mindirect" }?.line == 7)
        #expect(value("mindirect")?.flagText == "4K,8K,16K")
        #expect(value("piperesize")?.flagText == "off")
    }

    @Test(arguments: [
        ("write-size = 4K", "quote sizes"),
        ("write-size = \"4K", "unterminated string"),
        ("[engine\nmindirect = \"8K\"", "expected ']'"),
        ("a.b = 1", "dotted keys"),
        ("x = {a = 1}", "inline tables"),
        ("x = 1 2", "unexpected"),
        ("x = 1\nx = 2", "set twice"),
        ("= 3", "expected a key"),
    ])
    func tomlErrorsNameTheLine(_ text: String, _ fragment: String) {
        do {
            _ = try SweepConfigFile.parseTOML(text, name: "bad.toml")
            Issue.record("no error for \(text)")
        } catch let e as SweepError {
            #expect(e.message.hasPrefix("bad.toml:"))
            #expect(e.message.contains(fragment), "\(e.message)")
        } catch { Issue.record("\(error)") }
    }

    @Test func unknownKeysAndMisplacedKeysAreRefused() throws {
        for (text, fragment) in [
            ("wrte-size = \"4K\"", "unknown key 'wrte-size'"),
            ("[engine]\nwrite-size = \"4K\"", "belongs under [workload]"),
            ("[tuning]\nmindirect = \"8K\"", "unknown table [tuning]"),
        ] {
            let entries = try SweepConfigFile.parseTOML(text, name: "c.toml")
            do {
                try SweepConfigFile.checkKeys(entries, name: "c.toml")
                Issue.record("no error for \(text)")
            } catch let e as SweepError {
                #expect(e.message.contains(fragment), "\(e.message)")
            }
        }
    }

    @Test func json() throws {
        let text = """
        {"transport": ["engine", "linux-pipe"], "write-size": "4K..16K", "verify": true,
         "engine": {"mindirect": [4096, "8K"], "piperesize": false}, "repetitions": 3, "rate": 2.5}
        """
        let entries = try SweepConfigFile.parseJSON(text, name: "c.json")
        try SweepConfigFile.checkKeys(entries, name: "c.json")
        func value(_ key: String) -> ConfigValue? { entries.first { $0.key == key }?.value }
        #expect(value("verify") == .bool(true))
        #expect(value("repetitions") == .integer(3))
        #expect(value("rate") == .number(2.5))
        #expect(value("mindirect") == .array([.integer(4096), .string("8K")]))
        #expect(entries.first { $0.key == "mindirect" }?.table == "engine")
        #expect(throws: SweepError.self) { try SweepConfigFile.parseJSON("[1, 2]", name: "c.json") }
        #expect(throws: SweepError.self) { try SweepConfigFile.parseJSON("{\"a\": ", name: "c.json") }
    }
}
