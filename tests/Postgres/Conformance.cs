using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.Conformance.Suites;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.Postgres;

public sealed class Problem : ProblemSuite;

[TestFixture(Mode.Sync, TransactionCalls.TransactionObject)]
[TestFixture(Mode.Sync, TransactionCalls.DataConnectionMethods)]
[TestFixture(Mode.Async, TransactionCalls.TransactionObject)]
[TestFixture(Mode.Async, TransactionCalls.DataConnectionMethods)]
public sealed class Nesting(Mode mode, TransactionCalls calls) : NestingSuite(mode, calls);

[TestFixture(Mode.Sync)]
[TestFixture(Mode.Async)]
public sealed class RawAdo(Mode mode) : RawAdoSuite(mode);

[TestFixture(Mode.Sync)]
[TestFixture(Mode.Async)]
public sealed class ErrorRecovery(Mode mode) : ErrorRecoverySuite(mode);

[TestFixture(Mode.Sync)]
[TestFixture(Mode.Async)]
public sealed class BulkCopy(Mode mode) : BulkCopySuite(mode);

public sealed class ParallelIsolation : ParallelIsolationSuite;

public sealed class Trace : TraceSuite;

public sealed class Configuration : ConfigurationSuite
{
    protected override string UnreachableConnectionString => "Host=127.0.0.1;Port=1;Username=postgres;Password=postgres";

    protected override string WithPassword(string connectionString, string password) =>
        new Npgsql.NpgsqlConnectionStringBuilder(connectionString) { Password = password }.ConnectionString;

    protected override string MalformedConnectionString => $"Host=127.0.0.1;Password={SecretPassword.Insert(5, ";")};Port=5432";
}

public sealed class DatabaseLifecycle : DatabaseLifecycleSuite;

[Explicit("fails on purpose; NUnitIntegration runs it in a child test run")]
public sealed class DeliberateFailure : DeliberateFailureSuite;

public sealed class NUnitIntegration : NUnitIntegrationSuite
{
    protected override string DeliberateFailureFixture => typeof(DeliberateFailure).FullName!;
}

public sealed class ProfilesApi : ProfilesApiSuite;

public sealed class RegistrationShapes : RegistrationShapesSuite;
