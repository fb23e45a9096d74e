using System.Data.Common;
using Linq2DbTestKit.NUnit;
using Linq2DbTestKit.SqlServer;
using Microsoft.Data.SqlClient;
using Npgsql;
using NUnit.Framework;

namespace Consumer.Tests.Database;

/// <summary>A connection of the test's own, made with the driver alone, is outside the scope: the kit reports it.</summary>
public sealed class BypassTests
{
    [Test]
    public async Task A_query_on_a_drivers_own_connection_is_reported()
    {
        await using var scope = await TestRun.Database.BeginScopeAsync();
        using (scope.MakeCurrent())
        {
            await using DbConnection own = TestRun.Database.Provider == SqlServerDatabaseProvider.Instance
                ? new SqlConnection(TestRun.Database.ConnectionString)
                : new NpgsqlConnection(TestRun.Database.ConnectionString);
            await own.OpenAsync();
            await using var command = own.CreateCommand();
            command.CommandText = "SELECT count(*) FROM counters";
            await command.ExecuteScalarAsync();
        }

        Assert.That(scope.Bypasses, Has.Count.EqualTo(1));
        Assert.That(scope.Bypasses[0], Does.StartWith("read: SELECT count(*) FROM counters"));
    }
}
