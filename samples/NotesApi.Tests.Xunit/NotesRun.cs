using Linq2DbTestKit;
using Linq2DbTestKit.PostgreSql;
using Linq2DbTestKit.SqlServer;
using Linq2DbTestKit.Xunit;
using Xunit;
using NotesApi.Testing;
using NotesApi.XunitTests;

[assembly: AssemblyFixture(typeof(NotesRun))]

namespace NotesApi.XunitTests;

/// <summary>
/// The run of this assembly's tests: the kit creates the run's database, and the application starts on it before the
/// first test, so that what its start-up does (DbUp's migrations, the default tag) is part of every test's world.
/// </summary>
public sealed class NotesRun() : TestRun(TestKitEnvironment.SelectedProvider() == "sqlserver" ? SqlServerDatabaseProvider.Instance : PostgreSqlDatabaseProvider.Instance)
{
    protected override Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken)
    {
        NotesApp.Start(database);
        return Task.CompletedTask;
    }

    public override async ValueTask DisposeAsync()
    {
        await NotesApp.StopAsync();
        await base.DisposeAsync();
    }
}
