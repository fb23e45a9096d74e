using Linq2DbTestKit.Conformance.Suites;
using Microsoft.Data.SqlClient;

namespace Linq2DbTestKit.Tests.SqlServer;

public sealed class Configuration : ConfigurationSuite
{
    protected override string UnreachableConnectionString =>
        "Server=127.0.0.1,1;User ID=sa;Password=x;TrustServerCertificate=True;Connect Timeout=5;ConnectRetryCount=0";

    protected override string WithPassword(string connectionString, string password) =>
        new SqlConnectionStringBuilder(connectionString) { Password = password }.ConnectionString;

    protected override string MalformedConnectionString => $"Server=127.0.0.1;Password={SecretPassword.Insert(5, ";")};User ID=sa";
}

public sealed class Faults : FaultSuite
{
    protected override string SessionIdQuery => "SELECT @@SPID";

    protected override string KillSession(int id) => $"KILL {id}";

    protected override string KilledMidScopeFixture => typeof(KilledMidScope).FullName!;
}
