using Linq2DbTestKit;
using Linq2DbTestKit.MSTest;
using Linq2DbTestKit.PostgreSql;
using Linq2DbTestKit.SqlServer;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using NotesApi.Testing;

[assembly: Parallelize(Scope = ExecutionScope.MethodLevel)]

namespace NotesApi.MSTestTests;

/// <summary>
/// The run of this assembly's tests: the kit creates the run's database before the first test, and the application
/// starts on it, so that what its start-up does (DbUp's migrations, the default tag) is part of every test's world.
/// </summary>
[TestClass]
public sealed class NotesRun() : DatabaseRun(TestKitEnvironment.SelectedProvider() == "sqlserver" ? SqlServerDatabaseProvider.Instance : PostgreSqlDatabaseProvider.Instance)
{
    [AssemblyInitialize]
    public static Task Start(TestContext context) => StartAsync<NotesRun>(context);

    [AssemblyCleanup]
    public static Task End() => EndAsync();

    protected override Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken)
    {
        NotesApp.Start(database);
        return Task.CompletedTask;
    }

    protected override ValueTask StopAsync() => NotesApp.StopAsync();
}
