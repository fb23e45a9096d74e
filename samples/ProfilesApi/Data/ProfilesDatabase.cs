using System.Data.Common;
using FluentMigrator.Runner;
using LinqToDB;
using LinqToDB.DataProvider.SqlServer;
using Microsoft.Data.SqlClient;
using Npgsql;

namespace ProfilesApi.Data;

/// <summary>
/// Which database the API uses, from configuration: <c>Database:Provider</c> (<c>postgres</c> or <c>sqlserver</c>) and the
/// connection string <c>ConnectionStrings:Profiles</c>.
/// </summary>
public static class ProfilesDatabase
{
    public static IServiceCollection AddProfilesDatabase(this IServiceCollection services, IConfiguration configuration)
    {
        var provider = Provider(configuration);
        var connectionString = ConnectionString(configuration);
        return services.AddLinqToDBContext<AppDataConnection>((_, options) => provider switch
        {
            "postgres" => options.UsePostgreSQL(connectionString),
            _ => options.UseSqlServer(connectionString, SqlServerVersion.AutoDetect, SqlServerProvider.MicrosoftDataSqlClient),
        });
    }

    /// <summary>Creates the database if it does not exist and applies the migrations: what the API does when it starts on its own.</summary>
    public static void CreateAndMigrate(IConfiguration configuration)
    {
        var provider = Provider(configuration);
        var connectionString = ConnectionString(configuration);
        CreateIfMissing(provider, connectionString);
        Migrate(provider, connectionString);
    }

    /// <summary>Applies the API's migrations to the database behind <paramref name="connectionString"/>.</summary>
    public static void Migrate(string provider, string connectionString)
    {
        using var services = new ServiceCollection()
            .AddFluentMigratorCore()
            .ConfigureRunner(runner =>
            {
                _ = provider == "postgres" ? runner.AddPostgres() : runner.AddSqlServer2016();
                runner.WithGlobalConnectionString(connectionString).ScanIn(typeof(ProfilesDatabase).Assembly).For.Migrations();
            })
            .BuildServiceProvider(validateScopes: false);
        services.GetRequiredService<IMigrationRunner>().MigrateUp();
    }

    /// <summary>Whether <paramref name="exception"/> is a duplicate key in a unique index, on either database.</summary>
    public static bool IsUniqueViolation(DbException exception) =>
        exception is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation } or SqlException { Number: 2601 or 2627 };

    static string Provider(IConfiguration configuration) =>
        configuration["Database:Provider"]?.Trim().ToLowerInvariant() switch
        {
            null or "" or "postgres" => "postgres",
            "sqlserver" => "sqlserver",
            var other => throw new InvalidOperationException($"Database:Provider is '{other}'; set it to postgres or sqlserver."),
        };

    static string ConnectionString(IConfiguration configuration) =>
        configuration.GetConnectionString("Profiles") is { Length: > 0 } connectionString
            ? connectionString
            : throw new InvalidOperationException("ConnectionStrings:Profiles is not set; set it to the connection string of the API's database.");

    static void CreateIfMissing(string provider, string connectionString)
    {
        if (provider == "postgres")
        {
            var target = new NpgsqlConnectionStringBuilder(connectionString);
            using var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Database = "postgres" }.ConnectionString);
            admin.Open();
            using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @name", admin);
            exists.Parameters.AddWithValue("name", target.Database!);
            if (exists.ExecuteScalar() is null)
            {
                using var create = new NpgsqlCommand($"CREATE DATABASE \"{target.Database!.Replace("\"", "\"\"", StringComparison.Ordinal)}\"", admin);
                create.ExecuteNonQuery();
            }
        }
        else
        {
            var target = new SqlConnectionStringBuilder(connectionString);
            using var admin = new SqlConnection(new SqlConnectionStringBuilder(connectionString) { InitialCatalog = "master" }.ConnectionString);
            admin.Open();
            using var exists = new SqlCommand("SELECT DB_ID(@name)", admin);
            exists.Parameters.AddWithValue("name", target.InitialCatalog);
            if (exists.ExecuteScalar() is null or DBNull)
            {
                using var create = new SqlCommand($"CREATE DATABASE [{target.InitialCatalog.Replace("]", "]]", StringComparison.Ordinal)}]", admin);
                create.ExecuteNonQuery();
            }
        }
    }
}
