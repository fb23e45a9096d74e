namespace Linq2DbTestKit;

/// <summary>
/// The environment variables the kit reads, and which provider they select.
/// </summary>
/// <remarks>
/// <list type="table">
/// <item><term><c>TESTKIT_PROVIDER</c></term><description><c>postgres</c> (default) or <c>sqlserver</c>: the database this run uses.
/// A test project for another database reports its tests as skipped.</description></item>
/// <item><term><c>TESTKIT_POSTGRES_CONNECTION</c>, <c>TESTKIT_SQLSERVER_CONNECTION</c></term><description>the server to use;
/// see <see cref="DatabaseProvider.DefaultConnectionString"/> for the defaults.</description></item>
/// <item><term><c>TESTKIT_KEEP_DATABASE</c></term><description><c>true</c> keeps the run's database after the run, for debugging.</description></item>
/// <item><term><c>TESTKIT_DATABASE</c></term><description>run in this existing database instead of creating one;
/// needs <c>TESTKIT_ALLOW_EXISTING_DATABASE=true</c>.</description></item>
/// <item><term><c>TESTKIT_STATEMENT_SAVEPOINTS</c></term><description><c>true</c> wraps every statement in a savepoint of its own
/// (PostgreSQL), so that a failed statement does not abort the test's transaction.</description></item>
/// <item><term><c>TESTKIT_INTERCEPT_CONNECTIONS</c></term><description><c>false</c> stops linq2db contexts that the application
/// builds itself from joining the test's scope.</description></item>
/// <item><term><c>TESTKIT_START_SERVER</c></term><description><c>auto</c> (default), <c>docker</c>, <c>binaries</c> or <c>off</c>:
/// how the kit starts a throwaway server when none is configured and nothing answers at the default address.</description></item>
/// <item><term><c>TESTKIT_LEAK_CHECK</c></term><description><c>false</c> turns off the comparison of every table with its
/// prepared state after the tests, for runs that commit data on purpose.</description></item>
/// </list>
/// </remarks>
public static class TestKitEnvironment
{
    /// <summary>The variable that selects the provider: <c>postgres</c> or <c>sqlserver</c>.</summary>
    public const string ProviderVariable = "TESTKIT_PROVIDER";

    /// <summary>The variable that keeps the run's database after the run when set to <c>true</c>.</summary>
    public const string KeepDatabaseVariable = "TESTKIT_KEEP_DATABASE";

    /// <summary>The variable that names an existing database to run in instead of creating one.</summary>
    public const string ExistingDatabaseVariable = "TESTKIT_DATABASE";

    /// <summary>The variable that allows the kit to write into the database named by <see cref="ExistingDatabaseVariable"/>.</summary>
    public const string AllowExistingDatabaseVariable = "TESTKIT_ALLOW_EXISTING_DATABASE";

    /// <summary>The variable that turns on <see cref="TestDatabaseOptions.StatementSavepoints"/> when set to <c>true</c>.</summary>
    public const string StatementSavepointsVariable = "TESTKIT_STATEMENT_SAVEPOINTS";

    /// <summary>The variable that turns off <see cref="TestDatabaseOptions.InterceptConnections"/> when set to <c>false</c>.</summary>
    public const string InterceptConnectionsVariable = "TESTKIT_INTERCEPT_CONNECTIONS";

    /// <summary>The variable that turns off <see cref="TestDatabaseOptions.CheckForLeaks"/> when set to <c>false</c>.</summary>
    public const string LeakCheckVariable = "TESTKIT_LEAK_CHECK";

    /// <summary>
    /// The variable that says whether the kit starts a throwaway server when none is configured and nothing answers:
    /// <c>auto</c> (the default), <c>docker</c>, <c>binaries</c> or <c>off</c>.
    /// </summary>
    public const string StartServerVariable = "TESTKIT_START_SERVER";

    /// <summary>The variable that, set to <c>true</c>, makes a run build its schema template again instead of copying it.</summary>
    public const string RebuildTemplateVariable = "TESTKIT_REBUILD_TEMPLATE";

    /// <summary>The provider used when <see cref="ProviderVariable"/> is not set.</summary>
    public const string DefaultProvider = "postgres";

    internal static readonly string[] ProviderNames = ["postgres", "sqlserver"];

    /// <summary>
    /// The provider name that <see cref="ProviderVariable"/> selects, in lower case; <see cref="DefaultProvider"/> when it is not set.
    /// </summary>
    /// <exception cref="TestKitConfigurationException">The variable names a provider the kit does not know.</exception>
    public static string SelectedProvider() => SelectedProvider(Environment.GetEnvironmentVariable);

    internal static string SelectedProvider(Func<string, string?> read)
    {
        var value = read(ProviderVariable)?.Trim();
        if (string.IsNullOrEmpty(value))
            return DefaultProvider;

        var name = value.ToLowerInvariant();
        if (Array.IndexOf(ProviderNames, name) < 0)
        {
            throw new TestKitConfigurationException(
                $"{ProviderVariable}='{value}' is not a provider the kit knows. " +
                $"Set {ProviderVariable} to one of: {string.Join(", ", ProviderNames)} (or leave it unset for {DefaultProvider}).");
        }

        return name;
    }

    /// <summary>
    /// Why tests for <paramref name="provider"/> do not run in this environment, with the variables to set;
    /// <see langword="null"/> when they do run.
    /// </summary>
    /// <exception cref="TestKitConfigurationException">The provider variable names a provider the kit does not know.</exception>
    public static string? SkipReason(DatabaseProvider provider) => SkipReason(provider, Environment.GetEnvironmentVariable);

    internal static string? SkipReason(DatabaseProvider provider, Func<string, string?> read)
    {
        ArgumentNullException.ThrowIfNull(provider);

        var selected = SelectedProvider(read);
        if (selected == provider.Name)
            return null;

        var how = read(ProviderVariable) is null
            ? $"{ProviderVariable} is not set, so this run uses {DefaultProvider}"
            : $"{ProviderVariable}={selected} selects another database";
        return $"{provider.DisplayName} tests are skipped: {how}. To run them, set {ProviderVariable}={provider.Name}, " +
               $"with {provider.ConnectionVariable} naming the server unless the default fits ({provider.MaskedDefaultConnectionString}).";
    }

    internal static ServerStart ReadServerStart(Func<string, string?> read)
    {
        var value = read(StartServerVariable)?.Trim();
        return value?.ToLowerInvariant() switch
        {
            null or "" or "auto" or "true" or "yes" or "on" or "1" => ServerStart.Auto,
            "docker" or "container" => ServerStart.Docker,
            "binaries" or "local" => ServerStart.LocalBinaries,
            "off" or "false" or "no" or "0" => ServerStart.Off,
            _ => throw new TestKitConfigurationException(
                $"{StartServerVariable}='{value}' is not a way to start a server. Set {StartServerVariable} to auto (a container when Docker answers, " +
                "else the database's own binaries), docker, binaries or off."),
        };
    }

    internal static bool ReadFlag(Func<string, string?> read, string variable, bool defaultValue = false)
    {
        var value = read(variable)?.Trim();
        if (string.IsNullOrEmpty(value))
            return defaultValue;

        switch (value.ToLowerInvariant())
        {
            case "1" or "true" or "yes" or "on":
                return true;
            case "0" or "false" or "no" or "off":
                return false;
            default:
                throw new TestKitConfigurationException($"{variable}='{value}' is not a yes/no value. Set {variable} to true or false.");
        }
    }
}
