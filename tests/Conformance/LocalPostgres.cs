using System.Diagnostics;
using System.Net.Sockets;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance;

/// <summary>
/// Lets <c>dotnet test</c> run on a machine with no server configured: when TESTKIT_POSTGRES_CONNECTION is not set and
/// nothing answers on the default port, this repository's <c>scripts/local-postgres</c> starts a throwaway cluster.
/// It stays up for the next run; <c>scripts/local-postgres stop</c> removes it.
/// </summary>
public static class LocalPostgres
{
    public static async Task EnsureRunningAsync(DatabaseProvider provider, CancellationToken cancellationToken)
    {
        if (!string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(provider.ConnectionVariable)) || await AnswersAsync(cancellationToken))
            return;

        if (FindScript() is null)
        {
            throw new InvalidOperationException(
                $"No PostgreSQL answers on 127.0.0.1:5432 and scripts/local-postgres was not found above {AppContext.BaseDirectory}. " +
                $"Start a server and set {provider.ConnectionVariable}.");
        }

        await TestContext.Progress.WriteLineAsync("linq2db-testkit: no server configured; starting a throwaway PostgreSQL with scripts/local-postgres start");
        var (succeeded, messages) = await RunScriptAsync("start", port: null, cancellationToken);
        await TestContext.Progress.WriteLineAsync(messages.TrimEnd());
        if (!succeeded)
            throw new InvalidOperationException($"scripts/local-postgres start failed: {messages}");
    }

    /// <summary>Runs <c>scripts/local-postgres</c> with <paramref name="command"/>, on <paramref name="port"/> when given; what it said.</summary>
    public static async Task<(bool Succeeded, string Messages)> RunScriptAsync(string command, int? port, CancellationToken cancellationToken)
    {
        var script = FindScript() ?? throw new InvalidOperationException($"scripts/local-postgres was not found above {AppContext.BaseDirectory}.");
        var start = new ProcessStartInfo(script, command) { RedirectStandardError = true, RedirectStandardOutput = true };
        if (port is not null)
            start.Environment["TESTKIT_LOCAL_POSTGRES_PORT"] = port.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = await process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        return (process.ExitCode == 0, await output + errors);
    }

    static async Task<bool> AnswersAsync(CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync("127.0.0.1", 5432, cancellationToken);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public static string? FindScript()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var script = Path.Combine(directory.FullName, "scripts", "local-postgres");
            if (File.Exists(script))
                return script;
        }

        return null;
    }
}
