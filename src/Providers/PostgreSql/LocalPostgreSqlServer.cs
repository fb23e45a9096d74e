using System.Diagnostics;
using System.Globalization;
using Linq2DbTestKit.Internal;
using Npgsql;

namespace Linq2DbTestKit.PostgreSql;

/// <summary>
/// A throwaway PostgreSQL cluster from the machine's own server binaries: <c>initdb</c> into a temporary directory,
/// <c>pg_ctl start</c> on a free loopback port, durability off; stopped and deleted when disposed, or when the process
/// exits without disposing it.
/// </summary>
/// <remarks>
/// PostgreSQL refuses to run as root: as root, the kit runs the binaries as the <c>postgres</c> user the server's
/// packages create, through <c>runuser</c>.
/// </remarks>
internal sealed class LocalPostgreSqlServer : ThrowawayServer
{
    /// <summary>The variable that names the directory of <c>initdb</c> and <c>pg_ctl</c>; when set, the kit looks nowhere else.</summary>
    public const string BinariesVariable = "TESTKIT_POSTGRES_BIN";

    const string Password = "postgres";
    const string DirectoryPrefix = "linq2db-testkit-postgres-";
    const string OwnerFile = "owner.pid";
    static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(90);

    readonly string _binaries;
    readonly string _directory;
    readonly bool _asPostgresUser;
    int _stopped;

    LocalPostgreSqlServer(string binaries, string directory, int port, bool asPostgresUser)
    {
        _binaries = binaries;
        _directory = directory;
        Port = port;
        _asPostgresUser = asPostgresUser;
        AppDomain.CurrentDomain.ProcessExit += StopOnExit;
    }

    public int Port { get; }

    /// <summary>The cluster's data directory, for tests that look for what was left behind.</summary>
    public string DataDirectory => _directory;

    public override string ConnectionString => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = "postgres",
        Password = Password,
        Database = "postgres",
    }.ConnectionString;

    public override string Description => $"throwaway PostgreSQL cluster from {_binaries} on 127.0.0.1:{Port}";

    /// <summary>Where <c>initdb</c> and <c>pg_ctl</c> are, with how the kit looked; <see langword="null"/> when nowhere.</summary>
    public static (string? Directory, string Searched) FindBinaries(Func<string, string?> read)
    {
        if (read(BinariesVariable) is { Length: > 0 } given)
            return (HasBinaries(given) ? given : null, $"{BinariesVariable}={given}");

        var candidates = new List<string>();
        candidates.AddRange((read("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        if (OperatingSystem.IsWindows())
            candidates.AddRange(Versions(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.ProgramFiles), "PostgreSQL"), "bin"));
        else
            candidates.AddRange([.. Versions("/usr/lib/postgresql", "bin"), "/usr/local/pgsql/bin", "/opt/homebrew/bin", "/usr/local/bin"]);

        return (candidates.FirstOrDefault(HasBinaries), $"PATH, then {(OperatingSystem.IsWindows() ? @"Program Files\PostgreSQL\*\bin" : "/usr/lib/postgresql/*/bin, /usr/local/pgsql/bin, /opt/homebrew/bin and /usr/local/bin")}");

        static IEnumerable<string> Versions(string root, string bin) =>
            Directory.Exists(root)
                ? Directory.GetDirectories(root).OrderByDescending(d => double.TryParse(Path.GetFileName(d), CultureInfo.InvariantCulture, out var v) ? v : 0).Select(d => Path.Combine(d, bin))
                : [];
    }

    static bool HasBinaries(string directory) =>
        File.Exists(Path.Combine(directory, Executable("initdb"))) && File.Exists(Path.Combine(directory, Executable("pg_ctl")));

    static string Executable(string name) => OperatingSystem.IsWindows() ? name + ".exe" : name;

    /// <summary>Creates and starts a cluster from the binaries in <paramref name="binaries"/>.</summary>
    public static async Task<LocalPostgreSqlServer> StartAsync(string binaries, CancellationToken cancellationToken)
    {
        // On Unix, .NET names the effective user: root runs the binaries as postgres.
        var asPostgresUser = !OperatingSystem.IsWindows() && Environment.UserName == "root";
        if (asPostgresUser && !File.ReadLines("/etc/passwd").Any(line => line.StartsWith("postgres:", StringComparison.Ordinal)))
        {
            throw new TestKitConfigurationException(
                "The kit runs as root, and PostgreSQL refuses to: it would start the server as the 'postgres' user, which this machine does not have. " +
                "Install PostgreSQL's server package (it creates that user), run the tests as another user, or set TESTKIT_POSTGRES_CONNECTION to a server that runs.");
        }

        await RemoveAbandonedClustersAsync(binaries, asPostgresUser).ConfigureAwait(false);
        var directory = Path.Combine(Path.GetTempPath(), $"{DirectoryPrefix}{Guid.NewGuid():N}");
        var port = FreePort();
        var server = new LocalPostgreSqlServer(binaries, directory, port, asPostgresUser);
        try
        {
            var passwordFile = Path.GetTempFileName();
            try
            {
                await File.WriteAllTextAsync(passwordFile, Password, cancellationToken).ConfigureAwait(false);
                if (!OperatingSystem.IsWindows())
                    File.SetUnixFileMode(passwordFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
                await server.RunAsync("initdb", ["-D", directory, "-U", "postgres", $"--pwfile={passwordFile}", "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"], cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                File.Delete(passwordFile);
            }

            await File.WriteAllTextAsync(Path.Combine(directory, OwnerFile), Environment.ProcessId.ToString(CultureInfo.InvariantCulture), cancellationToken).ConfigureAwait(false);
            await server.RunAsync("pg_ctl", ["-D", directory, "-l", Path.Combine(directory, "server.log"), "-w", "-t", "60", "start", "-o", server.ServerOptions], cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Stops and deletes the clusters of test processes that died without stopping theirs (killed, or crashed): each
    /// cluster's directory names its owner's process id.
    /// </summary>
    static async Task RemoveAbandonedClustersAsync(string binaries, bool asPostgresUser)
    {
        foreach (var directory in Directory.EnumerateDirectories(Path.GetTempPath(), DirectoryPrefix + "*"))
        {
            var owner = Path.Combine(directory, OwnerFile);
            if (!File.Exists(owner) || !int.TryParse(File.ReadAllText(owner), CultureInfo.InvariantCulture, out var pid) || IsRunning(pid))
                continue;

            var abandoned = new LocalPostgreSqlServer(binaries, directory, port: 0, asPostgresUser);
            try
            {
                await abandoned.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception exception) when (exception is TestKitConfigurationException or IOException or UnauthorizedAccessException)
            {
                // Another run's, or not ours to remove: leave it.
            }
        }

        static bool IsRunning(int pid)
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                return !process.HasExited;
            }
            catch (ArgumentException)
            {
                return false;
            }
        }
    }

    string ServerOptions => string.Create(CultureInfo.InvariantCulture,
        $"-c listen_addresses=127.0.0.1 -p {Port} -c unix_socket_directories='{_directory}' -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off");

    /// <summary>Restarts the server in place, as a crash and restart would look to its clients: for the kit's fault tests.</summary>
    public Task RestartAsync(CancellationToken cancellationToken) =>
        RunAsync("pg_ctl", ["-D", _directory, "-l", Path.Combine(_directory, "server.log"), "-w", "-t", "60", "-m", "fast", "restart", "-o", ServerOptions], cancellationToken);

    public override async ValueTask DisposeAsync()
    {
        AppDomain.CurrentDomain.ProcessExit -= StopOnExit;
        await Task.Run(Stop).ConfigureAwait(false);
    }

    void StopOnExit(object? sender, EventArgs e) => Stop();

    void Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
            return;

        try
        {
            if (File.Exists(Path.Combine(_directory, "postmaster.pid")))
                RunAsync("pg_ctl", ["-D", _directory, "-w", "-t", "60", "-m", "fast", "stop"], CancellationToken.None).GetAwaiter().GetResult();
        }
        finally
        {
            if (Directory.Exists(_directory))
                Directory.Delete(_directory, recursive: true);
        }
    }

    async Task RunAsync(string program, string[] arguments, CancellationToken cancellationToken)
    {
        var executable = Path.Combine(_binaries, Executable(program));
        var start = _asPostgresUser ? new ProcessStartInfo("runuser") { ArgumentList = { "-u", "postgres", "--", executable } } : new ProcessStartInfo(executable);
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{executable} did not start.");
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(CommandTimeout);
        await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            var log = Path.Combine(_directory, "server.log");
            var serverLog = File.Exists(log) ? $"\nThe server's log:\n{await File.ReadAllTextAsync(log, CancellationToken.None).ConfigureAwait(false)}" : string.Empty;
            throw new TestKitConfigurationException(
                $"The kit could not start a throwaway PostgreSQL server: {program} failed (exit code {process.ExitCode}): {(await errors + await output).Trim()}{serverLog}");
        }
    }
}
