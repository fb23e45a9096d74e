using Linq2DbTestKit;
using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.PostgreSql;
using NUnit.Framework;

[assembly: Parallelizable(ParallelScope.Fixtures)]
[assembly: LevelOfParallelism(4)]

/// <summary>The run of this assembly: PostgreSQL, with the schemas applied once.</summary>
[SetUpFixture]
public sealed class PostgresRun() : ConformanceRun(PostgreSqlProvider.Instance)
{
    protected override async Task<TestDatabaseOptions> CreateOptionsAsync(CancellationToken cancellationToken)
    {
        await LocalPostgres.EnsureRunningAsync(PostgreSqlProvider.Instance, cancellationToken);
        return await base.CreateOptionsAsync(cancellationToken);
    }
}
