using Linq2DbTestKit;
using Linq2DbTestKit.PostgreSql;
using Linq2DbTestKit.SqlServer;
using Linq2DbTestKit.TUnit;
using NotesApi.Testing;

namespace NotesApi.TUnitTests;

/// <summary>
/// The run of this assembly's tests: the kit creates the run's database before the first test, and the application
/// starts on it, so that what its start-up does (DbUp's migrations, the default tag) is part of every test's world.
/// </summary>
public sealed class NotesRun() : TestRun(TestKitEnvironment.SelectedProvider() == "sqlserver" ? SqlServerDatabaseProvider.Instance : PostgreSqlDatabaseProvider.Instance)
{
    protected override Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken)
    {
        NotesApp.Start(database);
        return Task.CompletedTask;
    }

    protected override ValueTask StopAsync() => NotesApp.StopAsync();
}
