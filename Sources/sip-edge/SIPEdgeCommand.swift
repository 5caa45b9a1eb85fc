import ArgumentParser

@main
struct SIPEdgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sip-edge",
        abstract: "A security-hardened SIP edge proxy.",
        subcommands: [RunCommand.self, CheckCommand.self, ConfigCommand.self],
        defaultSubcommand: RunCommand.self
    )
}
