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

        var script = FindScript() ?? throw new InvalidOperationException(
            $"No PostgreSQL answers on 127.0.0.1:5432 and scripts/local-postgres was not found above {AppContext.BaseDirectory}. " +
            $"Start a server and set {provider.ConnectionVariable}.");
        await TestContext.Progress.WriteLineAsync($"linq2db-testkit: no server configured; starting a throwaway PostgreSQL with {script} start");

        using var process = Process.Start(new ProcessStartInfo(script, "start") { RedirectStandardError = true })!;
        var errors = await process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        await TestContext.Progress.WriteLineAsync(errors.TrimEnd());
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{script} start failed: {errors}");
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

    static string? FindScript()
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
