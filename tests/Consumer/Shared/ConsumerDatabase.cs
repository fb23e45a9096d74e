using System.Data.Common;
using Linq2DbTestKit;
using Linq2DbTestKit.AspNetCore;
using Linq2DbTestKit.SqlServer;
using LinqToDB;
using LinqToDB.Data;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Data.SqlClient;
using Npgsql;

namespace Consumer.Shared;

/// <summary>
/// What the consumers in xUnit, TUnit and MSTest share, none of it framework-specific: the application's schema, its
/// options, the API on the run's database, a driver's own connection, and which deliberate failure a run asks for.
/// </summary>
public static class ConsumerDatabase
{
    static TestDatabase? _database;
    static WebApplicationFactory<Program>? _api;

    /// <summary>The test of a deliberate failure that tests/Consumer/run asks for (bypass, leak), or none.</summary>
    public static string? Deliberate => Environment.GetEnvironmentVariable("CONSUMER_DELIBERATE");

    public static DataOptions AppOptions(string connectionString) => _database?.Provider == SqlServerDatabaseProvider.Instance
        ? new DataOptions().UseSqlServer(connectionString)
        : new DataOptions().UsePostgreSQL(connectionString);

    public static async Task PrepareAsync(TestDatabase database, CancellationToken cancellationToken)
    {
        _database = database;
        await using var db = new DataConnection(AppOptions(database.ConnectionString));
        await db.ExecuteAsync(database.Provider == SqlServerDatabaseProvider.Instance
            ? "CREATE TABLE counters (id int IDENTITY PRIMARY KEY, name nvarchar(100) NOT NULL)"
            : "CREATE TABLE counters (id serial PRIMARY KEY, name text NOT NULL)", cancellationToken);
        _api = new WebApplicationFactory<Program>()
            .WithWebHostBuilder(builder => builder
                .UseSetting("ConnectionStrings:App", database.ConnectionString)
                .UseSetting("Database:Provider", database.Provider.Name))
            .WithTestScopes();
    }

    public static HttpClient ClientFor(TestScope scope) => (_api ?? throw new InvalidOperationException("The run has not prepared the database.")).CreateClient(scope);

    public static async ValueTask StopAsync()
    {
        if (_api is not null)
            await _api.DisposeAsync();
        _api = null;
    }

    /// <summary>Inserts a row on a connection made with the driver alone, outside every scope: it commits for real.</summary>
    public static async Task InsertOnOwnConnectionAsync(TestDatabase database, string name)
    {
        await using DbConnection own = database.Provider == SqlServerDatabaseProvider.Instance
            ? new SqlConnection(database.ConnectionString)
            : new NpgsqlConnection(database.ConnectionString);
        await own.OpenAsync();
        await using var command = own.CreateCommand();
        command.CommandText = $"INSERT INTO counters (name) VALUES ('{name}')";
        await command.ExecuteNonQueryAsync();
    }
}
