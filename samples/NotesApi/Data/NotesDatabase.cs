using System.Reflection;
using DbUp;
using DbUp.Builder;
using LinqToDB;
using LinqToDB.Configuration;
using LinqToDB.Data;

namespace NotesApi.Data;

/// <summary>
/// The API's database, from configuration: <c>Database:Provider</c> (<c>postgres</c> or <c>sqlserver</c>) and the
/// connection string <c>ConnectionStrings:Notes</c>. Nothing of it is registered in the container: repositories build
/// their contexts from the configuration, and start-up registers linq2db's own configuration.
/// </summary>
public static class NotesDatabase
{
    /// <summary>The name under which start-up registers the database with linq2db; also linq2db's default configuration.</summary>
    public const string ConfigurationName = "Notes";

    /// <summary>The tag every database starts with.</summary>
    public const string DefaultTag = "inbox";

    public static string Provider(IConfiguration configuration) =>
        configuration["Database:Provider"]?.Trim().ToLowerInvariant() switch
        {
            null or "" or "postgres" => "postgres",
            "sqlserver" => "sqlserver",
            var other => throw new InvalidOperationException($"Database:Provider is '{other}'; set it to postgres or sqlserver."),
        };

    public static string ConnectionString(IConfiguration configuration) =>
        configuration.GetConnectionString("Notes") is { Length: > 0 } connectionString
            ? connectionString
            : throw new InvalidOperationException("ConnectionStrings:Notes is not set; set it to the connection string of the API's database.");

    /// <summary>linq2db's provider name for <paramref name="provider"/>.</summary>
    public static string LinqToDBProviderName(string provider) => provider == "postgres" ? ProviderName.PostgreSQL : ProviderName.SqlServer;

    /// <summary>linq2db options for the connection string, as the linq2db documentation shows them.</summary>
    public static DataOptions Options(string connectionString, string provider) =>
        provider == "postgres" ? new DataOptions().UsePostgreSQL(connectionString) : new DataOptions().UseSqlServer(connectionString);

    /// <summary>Registers the database with linq2db, so that <c>new NotesDb()</c> reaches it.</summary>
    public static void Configure(IConfiguration configuration)
    {
        DataConnection.DefaultSettings = new Settings(
            new ConnectionStringSettings(ConfigurationName, ConnectionString(configuration), LinqToDBProviderName(Provider(configuration))));
        DataConnection.DefaultConfiguration = ConfigurationName;
    }

    /// <summary>Creates the database if it is missing, applies the migrations and seeds the default tag.</summary>
    public static void MigrateAndSeed(IConfiguration configuration)
    {
        var provider = Provider(configuration);
        var connectionString = ConnectionString(configuration);
        var scripts = $"{typeof(NotesDatabase).Namespace![..^".Data".Length]}.Scripts.{provider}.";

        UpgradeEngineBuilder upgrade;
        if (provider == "postgres")
        {
            EnsureDatabase.For.PostgresqlDatabase(connectionString);
            upgrade = DeployChanges.To.PostgresqlDatabase(connectionString);
        }
        else
        {
            EnsureDatabase.For.SqlDatabase(connectionString);
            upgrade = DeployChanges.To.SqlDatabase(connectionString);
        }

        var result = upgrade
            .WithScriptsEmbeddedInAssembly(Assembly.GetExecutingAssembly(), name => name.StartsWith(scripts, StringComparison.Ordinal))
            .LogToNowhere()
            .Build()
            .PerformUpgrade();
        if (!result.Successful)
            throw new InvalidOperationException($"The migrations failed at {result.ErrorScript?.Name}: {result.Error.Message}", result.Error);

        using var db = new NotesDb();
        if (!db.Tags.Any(t => t.Name == DefaultTag))
            db.Insert(new TagRow { Name = DefaultTag });
    }

    sealed class Settings(IConnectionStringSettings connection) : ILinqToDBSettings
    {
        public IEnumerable<IDataProviderSettings> DataProviders => [];

        public string DefaultConfiguration => connection.Name;

        public string? DefaultDataProvider => null;

        public IEnumerable<IConnectionStringSettings> ConnectionStrings => [connection];
    }
}
