using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.SqlServer;
using NUnit.Framework;

/// <summary>The run of this assembly: SQL Server, with the schemas applied once. Skipped unless TESTKIT_PROVIDER=sqlserver.</summary>
[SetUpFixture]
public sealed class SqlServerRun() : ConformanceRun(SqlServerDatabaseProvider.Instance);
