using System.Data.Common;
using Linq2DbTestKit;
using Linq2DbTestKit.AspNetCore;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Data.SqlClient;
using Npgsql;

namespace NotesApi.Testing;

/// <summary>
/// The application under test, configured as its deployment would be: only its connection string differs. It knows no
/// test framework: each framework's run starts it on the run's database, and its tests use it the same way.
/// </summary>
public static class NotesApp
{
    static TestDatabase? _database;
    static WebApplicationFactory<Program>? _factory;

    /// <summary>The application, started on the run's database.</summary>
    public static WebApplicationFactory<Program> Factory =>
        _factory ?? throw new InvalidOperationException("The application has not started: the run's set-up calls NotesApp.Start(database).");

    /// <summary>Starts the application on <paramref name="database"/>, so that its start-up (DbUp's migrations, the default tag) is part of every test's world.</summary>
    public static void Start(TestDatabase database)
    {
        _database = database;
        _factory = new WebApplicationFactory<Program>()
            .WithWebHostBuilder(builder => builder
                .UseSetting("Database:Provider", database.Provider.Name)
                .UseSetting("ConnectionStrings:Notes", database.ConnectionString))
            .WithTestScopes();
        _ = _factory.Server;
    }

    /// <summary>Stops the application, before the run drops its database.</summary>
    public static async ValueTask StopAsync()
    {
        if (_factory is not null)
            await _factory.DisposeAsync();
        _factory = null;
    }

    /// <summary>A connection of the test's own, for looking at the database from outside every test's scope.</summary>
    public static async Task<DbConnection> OpenOutsideAsync()
    {
        var database = _database ?? throw new InvalidOperationException("The application has not started: the run's set-up calls NotesApp.Start(database).");
        DbConnection connection = database.Provider.Name == "postgres"
            ? new NpgsqlConnection(new NpgsqlConnectionStringBuilder(database.ConnectionString) { ApplicationName = "notes-tests-outside" }.ConnectionString)
            : new SqlConnection(new SqlConnectionStringBuilder(database.ConnectionString) { ApplicationName = "notes-tests-outside" }.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    /// <summary>The number of rows of <paramref name="table"/> whose <paramref name="column"/> starts with <paramref name="prefix"/>, seen from outside.</summary>
    public static async Task<long> CountOutsideAsync(string table, string column, string prefix)
    {
        await using var connection = await OpenOutsideAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT COUNT(*) FROM {table} WHERE {column} LIKE @prefix";
        var parameter = command.CreateParameter();
        parameter.ParameterName = "prefix";
        parameter.Value = prefix + "%";
        command.Parameters.Add(parameter);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
