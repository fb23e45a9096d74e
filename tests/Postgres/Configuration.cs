using Linq2DbTestKit.Conformance.Suites;

namespace Linq2DbTestKit.Tests.Postgres;

public sealed class Configuration : ConfigurationSuite
{
    protected override string UnreachableConnectionString => "Host=127.0.0.1;Port=1;Username=postgres;Password=postgres";

    protected override string WithPassword(string connectionString, string password) =>
        new Npgsql.NpgsqlConnectionStringBuilder(connectionString) { Password = password }.ConnectionString;

    protected override string MalformedConnectionString => $"Host=127.0.0.1;Password={SecretPassword.Insert(5, ";")};Port=5432";
}

public sealed class Faults : FaultSuite
{
    protected override string SessionIdQuery => "SELECT pg_backend_pid()";

    protected override string KillSession(int id) => $"SELECT pg_terminate_backend({id})";

    protected override string KilledMidScopeFixture => typeof(KilledMidScope).FullName!;
}
