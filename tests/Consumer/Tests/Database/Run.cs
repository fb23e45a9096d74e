using Linq2DbTestKit;
using Linq2DbTestKit.NUnit;
using Linq2DbTestKit.PostgreSql;
using Linq2DbTestKit.SqlServer;
using LinqToDB;
using LinqToDB.Data;
using NUnit.Framework;

[assembly: Parallelizable(ParallelScope.All)]

namespace Consumer.Tests.Database;

/// <summary>
/// The run of the tests in this namespace. TESTKIT_PROVIDER chooses the database; with no server configured and none
/// at the default address, the kit starts a throwaway one and stops it after the last test.
/// </summary>
[SetUpFixture]
public sealed class Run() : TestRun(TestKitEnvironment.SelectedProvider() == "sqlserver" ? SqlServerDatabaseProvider.Instance : PostgreSqlDatabaseProvider.Instance)
{
    public static DataOptions AppOptions(string connectionString) => TestRun.Database.Provider == SqlServerDatabaseProvider.Instance
        ? new DataOptions().UseSqlServer(connectionString)
        : new DataOptions().UsePostgreSQL(connectionString);

    protected override async Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken)
    {
        await using var db = new DataConnection(AppOptions(database.ConnectionString));
        await db.ExecuteAsync(database.Provider == SqlServerDatabaseProvider.Instance
            ? "CREATE TABLE counters (id int IDENTITY PRIMARY KEY, name nvarchar(100) NOT NULL)"
            : "CREATE TABLE counters (id serial PRIMARY KEY, name text NOT NULL)", cancellationToken);
    }

    [OneTimeTearDown]
    public static async Task StopTheApi() => await Api.DisposeAsync();
}
