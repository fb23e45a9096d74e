using System.Data.Common;
using Linq2DbTestKit.AspNetCore;
using Linq2DbTestKit.NUnit;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Data.SqlClient;
using Npgsql;

namespace NotesApi.Tests;

/// <summary>The application under test, configured as its deployment would be: only its connection string differs.</summary>
public static class NotesApp
{
    public static readonly WebApplicationFactory<Program> Factory = new WebApplicationFactory<Program>()
        .WithWebHostBuilder(builder => builder
            .UseSetting("Database:Provider", TestRun.Database.Provider.Name)
            .UseSetting("ConnectionStrings:Notes", TestRun.Database.ConnectionString))
        .WithTestScopes();

    /// <summary>A connection of the test's own, for looking at the database from outside every test's scope.</summary>
    public static async Task<DbConnection> OpenOutsideAsync()
    {
        DbConnection connection = TestRun.Database.Provider.Name == "postgres"
            ? new NpgsqlConnection(new NpgsqlConnectionStringBuilder(TestRun.Database.ConnectionString) { ApplicationName = "notes-tests-outside" }.ConnectionString)
            : new SqlConnection(new SqlConnectionStringBuilder(TestRun.Database.ConnectionString) { ApplicationName = "notes-tests-outside" }.ConnectionString);
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
