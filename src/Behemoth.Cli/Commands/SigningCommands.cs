using System.CommandLine;
using Behemoth.Package;

namespace Behemoth.Cli.Commands;

/// <summary><c>behemoth keygen</c> and <c>behemoth sign</c>: the key pair a publisher signs packages with, and the signature.</summary>
internal static class SigningCommands
{
    public static Command Keygen()
    {
        var output = new Option<string>("--out") { Description = "Path prefix of the key pair: writes PREFIX.private and PREFIX.public", Required = true };
        var command = new Command("keygen", "Make an ECDSA P-256 key pair for signing packages (the .private file stays with the publisher, the .public goes to devices)") { output };
        command.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var (privateKey, publicKey, id) = PackageSigning.GenerateKeyPair(parse.GetValue(output)!);
            Console.WriteLine($"key {id}");
            Console.WriteLine($"  private: {privateKey} (keep it secret; readable by you only)");
            Console.WriteLine($"  public:  {publicKey} (give it to devices: --trust {publicKey})");
            return 0;
        }));
        return command;
    }

    public static Command Sign()
    {
        var package = new Argument<string>("package") { Description = "Package directory" };
        var key = new Option<string>("--key") { Description = "The private key (behemoth keygen's .private file)", Required = true };
        var command = new Command("sign", $"Sign a package's manifest (which holds the SHA-256 of every file) into {PackageSigning.SignatureFile}; signing again with another key adds its signature") { package, key };
        command.SetAction(parse => CliErrors.Run(parse, () =>
        {
            string dir = parse.GetValue(package)!;
            string id = PackageSigning.Sign(dir, parse.GetValue(key)!);
            Console.WriteLine($"signed {dir} with key {id} ({Path.Combine(dir, PackageSigning.SignatureFile)})");
            return 0;
        }));
        return command;
    }
}
