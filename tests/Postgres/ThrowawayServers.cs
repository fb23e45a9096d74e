using System.Diagnostics;
using Linq2DbTestKit.Internal;
using Linq2DbTestKit.PostgreSql;
using Npgsql;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.Postgres;

/// <summary>
/// The throwaway PostgreSQL server the kit starts from the machine's binaries when none is configured: it starts,
/// serves, and leaves neither a process nor a directory behind; a killed run's cluster goes at the next start; and
/// with no way to start one, the kit says within seconds what it tried and what to install.
/// </summary>
[CancelAfter(300_000)]
public sealed class ThrowawayServers
{
    static string Binaries()
    {
        var (binaries, searched) = LocalPostgreSqlServer.FindBinaries(Environment.GetEnvironmentVariable);
        if (binaries is null)
            Assert.Ignore($"needs PostgreSQL's server binaries; initdb and pg_ctl are not in {searched}");
        return binaries;
    }

    static async Task<string> VersionAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SHOW server_version", connection);
        return (string)(await command.ExecuteScalarAsync())!;
    }

    [Test]
    public async Task A_cluster_from_the_machines_binaries_serves_and_leaves_nothing_when_stopped()
    {
        var server = await LocalPostgreSqlServer.StartAsync(Binaries(), CancellationToken.None);
        var port = server.Port;
        var directory = server.DataDirectory;
        Assert.That(await VersionAsync(server.ConnectionString), Is.Not.Empty);
        NpgsqlConnection.ClearAllPools();

        await server.DisposeAsync();

        Assert.That(Directory.Exists(directory), Is.False, "no data directory is left");
        Assert.That(await ThrowawayServer.AnswersAsync("127.0.0.1", port, CancellationToken.None), Is.False, "nothing listens on its port any more");
    }

    [Test]
    public async Task The_cluster_of_a_run_that_died_without_stopping_it_goes_at_the_next_start()
    {
        var binaries = Binaries();
        var abandoned = await LocalPostgreSqlServer.StartAsync(binaries, CancellationToken.None);
        using (var dead = Process.Start(new ProcessStartInfo("true"))!)
        {
            await dead.WaitForExitAsync();
            await File.WriteAllTextAsync(Path.Combine(abandoned.DataDirectory, "owner.pid"), dead.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        await using (await LocalPostgreSqlServer.StartAsync(binaries, CancellationToken.None))
        {
            Assert.That(Directory.Exists(abandoned.DataDirectory), Is.False, "the next start removed the dead run's cluster");
            Assert.That(await ThrowawayServer.AnswersAsync("127.0.0.1", abandoned.Port, CancellationToken.None), Is.False);
        }
    }

    [Test]
    public async Task With_no_way_to_start_a_server_the_kit_says_at_once_what_it_tried_and_what_to_install()
    {
        var empty = Directory.CreateTempSubdirectory("testkit-no-binaries-");
        try
        {
            var watch = Stopwatch.StartNew();
            var error = await Assert.ThrowsAsync<TestKitConfigurationException>(() => PostgreSqlDatabaseProvider.Instance.StartServerAsync(
                ServerStart.LocalBinaries, name => name == LocalPostgreSqlServer.BinariesVariable ? empty.FullName : null, CancellationToken.None));

            Assert.That(error!.Message, Does.Contain($"initdb and pg_ctl are not in {LocalPostgreSqlServer.BinariesVariable}={empty.FullName}")
                .And.Contain("apt-get install postgresql").And.Contain("Docker").And.Contain("TESTKIT_POSTGRES_CONNECTION"));
            Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "it fails at once, not after a timeout");
        }
        finally
        {
            empty.Delete();
        }
    }
}
