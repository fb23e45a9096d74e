using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.PostgreSql;
using NUnit.Framework;

/// <summary>The run of this assembly: PostgreSQL, with the schemas applied once; on a throwaway server when none is configured.</summary>
[SetUpFixture]
public sealed class PostgresRun() : ConformanceRun(PostgreSqlDatabaseProvider.Instance);
