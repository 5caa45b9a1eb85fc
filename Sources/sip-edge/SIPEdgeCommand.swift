import ArgumentParser

@main
struct SIPEdgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sip-edge",
        abstract: "A security-hardened SIP edge proxy.",
        subcommands: [CheckCommand.self]
    )
}
