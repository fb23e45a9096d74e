using Linq2DbTestKit;
using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.PostgreSql;
using NUnit.Framework;

/// <summary>The run of this assembly: PostgreSQL, with the schemas applied once.</summary>
[SetUpFixture]
public sealed class PostgresRun() : ConformanceRun(PostgreSqlDatabaseProvider.Instance)
{
    protected override async Task<TestDatabaseOptions> CreateOptionsAsync(CancellationToken cancellationToken)
    {
        await LocalPostgres.EnsureRunningAsync(PostgreSqlDatabaseProvider.Instance, cancellationToken);
        return await base.CreateOptionsAsync(cancellationToken);
    }
}
