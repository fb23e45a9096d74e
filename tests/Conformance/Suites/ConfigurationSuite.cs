using System.Data.Common;
using Linq2DbTestKit.NUnit;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// Bad configuration gets a clear message that names the cause, the variable and the fix, within seconds, and never
/// shows the password.
/// </summary>
[CancelAfter(60_000)]
public abstract class ConfigurationSuite
{
    protected const string SecretPassword = "Sup3r-Secret-Pa55word";

    protected static DatabaseProvider Provider => TestRun.Database.Provider;

    /// <summary>The connection string this run uses.</summary>
    protected static string RunConnectionString =>
        TestRun.Database.ServerConnectionString;

    /// <summary>A connection string to a loopback port where nothing listens.</summary>
    protected abstract string UnreachableConnectionString { get; }

    /// <summary><paramref name="connectionString"/> with its password replaced.</summary>
    protected abstract string WithPassword(string connectionString, string password);

    /// <summary>A connection string the driver cannot parse, whose password (containing ';') is <see cref="SecretPassword"/>.</summary>
    protected abstract string MalformedConnectionString { get; }

    static Func<string, string?> Variables(params (string Name, string Value)[] variables) =>
        name => variables.FirstOrDefault(v => v.Name == name).Value;

    static async Task<TestKitConfigurationException> CreateFailsAsync(TestDatabaseOptions options)
    {
        var error = await Assert.ThrowsAsync<TestKitConfigurationException>(() => TestDatabase.CreateAsync(Provider, options));
        Assert.That(error, Is.Not.Null);
        return error!;
    }

    static void AssertNoPassword(Exception error, string password)
    {
        for (Exception? e = error; e is not null; e = e.InnerException)
            Assert.That(e.ToString(), Does.Not.Contain(password), "the password appears in an error");
    }

    [Test]
    public void An_unknown_provider_name_names_the_variable_the_value_and_the_choices()
    {
        var error = Assert.Throws<TestKitConfigurationException>(() => TestKitEnvironment.SelectedProvider(Variables(("TESTKIT_PROVIDER", "mysql"))));

        Assert.That(error!.Message, Does.Contain("TESTKIT_PROVIDER='mysql'").And.Contain("postgres, sqlserver"));
    }

    [Test]
    public void The_provider_name_is_read_without_regard_to_case_and_defaults_to_postgres()
    {
        Assert.That(TestKitEnvironment.SelectedProvider(Variables(("TESTKIT_PROVIDER", " SqlServer "))), Is.EqualTo("sqlserver"));
        Assert.That(TestKitEnvironment.SelectedProvider(Variables()), Is.EqualTo("postgres"));
    }

    [Test]
    public void A_project_for_another_provider_is_skipped_with_the_variables_to_set()
    {
        var other = Provider.Name == "postgres" ? "sqlserver" : "postgres";

        var reason = TestKitEnvironment.SkipReason(Provider, Variables(("TESTKIT_PROVIDER", other)));

        Assert.That(reason, Does.Contain($"TESTKIT_PROVIDER={Provider.Name}").And.Contain(Provider.ConnectionVariable));
        Assert.That(TestKitEnvironment.SkipReason(Provider, Variables(("TESTKIT_PROVIDER", Provider.Name))), Is.Null);
    }

    [Test]
    public void A_yes_no_variable_with_another_value_names_the_variable()
    {
        var error = Assert.Throws<TestKitConfigurationException>(() =>
            TestDatabaseOptions.FromEnvironment(Provider, Variables(("TESTKIT_KEEP_DATABASE", "maybe"))));

        Assert.That(error!.Message, Does.Contain("TESTKIT_KEEP_DATABASE='maybe'").And.Contain("true or false"));
    }

    [Test]
    public async Task An_unreachable_server_names_the_variable_and_how_to_start_one()
    {
        var options = TestDatabaseOptions.FromEnvironment(Provider, Variables((Provider.ConnectionVariable, WithPassword(UnreachableConnectionString, SecretPassword))));

        var error = await CreateFailsAsync(options);

        Assert.That(error.Message, Does.Contain("nothing accepts connections there").And.Contain(Provider.ConnectionVariable).And.Contain("Start a server"));
        AssertNoPassword(error, SecretPassword);
    }

    [Test]
    public async Task With_nothing_at_the_default_address_and_server_start_off_the_run_fails_naming_both_variables()
    {
        var defaults = Provider.Parse(Provider.DefaultConnectionString, "the default connection string");
        Assume.That(await Linq2DbTestKit.Internal.ThrowawayServer.AnswersAsync(defaults.Host, defaults.Port, CancellationToken.None), Is.False,
            $"a server answers at the default address {defaults.Server} on this machine");

        var error = await CreateFailsAsync(TestDatabaseOptions.FromEnvironment(Provider, Variables((TestKitEnvironment.StartServerVariable, "off"))));

        Assert.That(error.Message, Does.Contain("nothing accepts connections there").And.Contain(Provider.ConnectionVariable).And.Contain(TestKitEnvironment.StartServerVariable));
    }

    [Test]
    public void A_way_to_start_a_server_the_kit_does_not_know_names_the_variable_and_the_choices()
    {
        var error = Assert.Throws<TestKitConfigurationException>(() => TestDatabaseOptions.FromEnvironment(Provider, Variables((TestKitEnvironment.StartServerVariable, "kubernetes"))));

        Assert.That(error!.Message, Does.Contain("TESTKIT_START_SERVER='kubernetes'").And.Contain("auto").And.Contain("docker").And.Contain("binaries").And.Contain("off"));
    }

    [Test]
    public async Task A_connection_string_given_in_code_is_named_as_such_when_it_fails()
    {
        var error = await CreateFailsAsync(new TestDatabaseOptions { ConnectionString = UnreachableConnectionString });

        Assert.That(error.Message, Does.Contain("the connection string given in code").And.Contain("nothing accepts connections there"));
    }

    [Test]
    public async Task A_missing_existing_database_names_the_variable_that_named_it()
    {
        var options = TestDatabaseOptions.FromEnvironment(Provider, Variables(
            (Provider.ConnectionVariable, RunConnectionString), ("TESTKIT_DATABASE", "no_such_database_here"), ("TESTKIT_ALLOW_EXISTING_DATABASE", "true")));

        var error = await CreateFailsAsync(options);

        Assert.That(error.Message, Does.Contain("database 'no_such_database_here' does not exist").And.Contain("TESTKIT_DATABASE"));
    }

    [Test]
    public async Task A_wrong_password_is_named_as_such_and_not_shown()
    {
        await using (var probe = Provider.CreateConnection(WithPassword(RunConnectionString, SecretPassword)))
        {
            var accepted = true;
            try
            {
                await probe.OpenAsync();
            }
            catch (DbException)
            {
                accepted = false;
            }

            if (accepted)
                Assert.Ignore("The server lets this user in with any password (PostgreSQL's trust authentication, say): no password is wrong there. This test runs where the server checks passwords, as the kit's own throwaway servers do.");
        }

        var options = TestDatabaseOptions.FromEnvironment(Provider, Variables((Provider.ConnectionVariable, WithPassword(RunConnectionString, SecretPassword))));

        var error = await CreateFailsAsync(options);

        Assert.That(error.Message, Does.Contain("refused the user name or password").And.Contain(Provider.ConnectionVariable));
        AssertNoPassword(error, SecretPassword);
    }

    [Test]
    public async Task A_malformed_connection_string_names_the_variable_and_hides_the_password()
    {
        var options = TestDatabaseOptions.FromEnvironment(Provider, Variables((Provider.ConnectionVariable, MalformedConnectionString)));

        var error = await CreateFailsAsync(options);

        Assert.That(error.Message, Does.Contain(Provider.ConnectionVariable).And.Contain("not a valid"));
        foreach (var part in SecretPassword.Split(';'))
            AssertNoPassword(error, part);
    }

    [Test]
    public async Task An_existing_database_is_refused_unless_explicitly_allowed()
    {
        var options = TestDatabaseOptions.FromEnvironment(Provider, Variables(("TESTKIT_DATABASE", TestRun.Database.Name)));

        var error = await CreateFailsAsync(options);

        Assert.That(error.Message, Does.Contain($"TESTKIT_DATABASE names '{TestRun.Database.Name}'").And.Contain("TESTKIT_ALLOW_EXISTING_DATABASE=true"));
    }
}
