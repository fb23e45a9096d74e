using Linq2DbTestKit;
using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.NUnit;
using Linq2DbTestKit.PostgreSql;
using NUnit.Framework;

[assembly: Parallelizable(ParallelScope.Fixtures)]
[assembly: LevelOfParallelism(4)]

/// <summary>The run of this assembly: PostgreSQL, with the test application's schema applied once.</summary>
[SetUpFixture]
public sealed class PostgresRun() : TestRun(PostgreSqlProvider.Instance)
{
    protected override async Task<TestDatabaseOptions> CreateOptionsAsync(CancellationToken cancellationToken)
    {
        await LocalPostgres.EnsureRunningAsync(PostgreSqlProvider.Instance, cancellationToken);
        return await base.CreateOptionsAsync(cancellationToken);
    }

    protected override Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken) =>
        ShopSchema.ApplyAsync(database);
}
