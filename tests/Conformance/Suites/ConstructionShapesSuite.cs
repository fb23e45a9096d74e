using System.Data.Common;
using System.Net;
using Linq2DbTestKit.AspNetCore;
using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.Internal;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Async;
using LinqToDB.Data;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Hosting;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>How application code builds a linq2db context itself, without dependency injection.</summary>
public enum Construction
{
    /// <summary><c>new AppDb()</c>: linq2db's default configuration.</summary>
    DefaultConfiguration,

    /// <summary><c>new AppDb("Name")</c>: a configuration registered by name.</summary>
    ConfigurationName,

    /// <summary><c>new AppDb(ProviderName.PostgreSQL, connectionString)</c>.</summary>
    ProviderNameAndConnectionString,

    /// <summary><c>new DataConnection(ProviderName.PostgreSQL, connectionString)</c>, linq2db's own class.</summary>
    PlainDataConnection,

    /// <summary><c>new AppDb(new DataOptions().UseConnectionString(ProviderName.PostgreSQL, connectionString))</c>.</summary>
    OptionsWithProviderName,

    /// <summary><c>new AppDb(new DataOptions().UseConnectionString(dataProvider, connectionString))</c>.</summary>
    OptionsWithProviderInstance,

    /// <summary><c>new AppDb(new DataOptions().UsePostgreSQL(connectionString))</c> or <c>UseSqlServer</c>.</summary>
    ProviderSpecificOptions,

    /// <summary>As <see cref="ProviderSpecificOptions"/>, with a connection string the test derived from the run's (another application name, no pooling).</summary>
    DerivedConnectionString,
}

/// <summary>
/// Every way an application builds a linq2db context itself lands on the test's scope, in test code and inside a
/// request of the test: what the application commits is visible to the test and gone after it, checked from outside.
/// Outside any test the same code reaches the real database.
/// </summary>
/// <remarks>
/// No application code changes for the test: the contexts are built from the run's connection string, as the
/// application's configuration gives it, and the kit's interception of linq2db connections does the rest.
/// </remarks>
[Parallelizable(ParallelScope.All)]
public abstract class ConstructionShapesSuite : ConformanceTest
{
    const string ConfigurationName = "testkit-construction-shapes";

    static IHost? app;

    /// <summary>The application's own context, with the constructors linq2db's documentation shows.</summary>
    public sealed class AppDb : DataConnection
    {
        public AppDb()
        {
        }

        public AppDb(string configurationString)
            : base(configurationString)
        {
        }

#pragma warning disable CS0618 // Obsolete in linq2db 6, and still what many applications write.
        public AppDb(string providerName, string connectionString)
            : base(providerName, connectionString)
        {
        }
#pragma warning restore CS0618

        public AppDb(DataOptions options)
            : base(options)
        {
        }
    }

    static string ProviderName => TestRun.Database.Provider.Name == "postgres" ? LinqToDB.ProviderName.PostgreSQL : LinqToDB.ProviderName.SqlServer;

    static string ConnectionString => TestRun.Database.ConnectionString;

    /// <summary>Builds the context in <paramref name="shape"/>, as application code would.</summary>
    public static DataConnection Build(Construction shape) => shape switch
    {
        Construction.DefaultConfiguration => new AppDb(),
        Construction.ConfigurationName => new AppDb(ConfigurationName),
        Construction.ProviderNameAndConnectionString => new AppDb(ProviderName, ConnectionString),
#pragma warning disable CS0618
        Construction.PlainDataConnection => new DataConnection(ProviderName, ConnectionString),
#pragma warning restore CS0618
        Construction.OptionsWithProviderName => new AppDb(new DataOptions().UseConnectionString(ProviderName, ConnectionString)),
        Construction.OptionsWithProviderInstance => new AppDb(new DataOptions().UseConnectionString(TestRun.Database.LinqToDBProvider, ConnectionString)),
        Construction.ProviderSpecificOptions => new AppDb(ProviderSpecific(new DataOptions(), ConnectionString)),
        Construction.DerivedConnectionString => new AppDb(ProviderSpecific(new DataOptions(), Derived(ConnectionString))),
        _ => throw new ArgumentOutOfRangeException(nameof(shape)),
    };

    static DataOptions ProviderSpecific(DataOptions options, string connectionString) =>
        TestRun.Database.Provider.Name == "postgres" ? options.UsePostgreSQL(connectionString) : options.UseSqlServer(connectionString);

    static string Derived(string connectionString)
    {
        var builder = new DbConnectionStringBuilder { ConnectionString = connectionString };
        builder["Application Name"] = "the-application";
        builder["Pooling"] = "false";
        return builder.ConnectionString;
    }

    /// <summary>The application's code: it opens its own transaction and commits it.</summary>
    static async Task WriteAndCommitAsync(Construction shape, string name)
    {
        await using var db = Build(shape);
        await using var transaction = await db.BeginTransactionAsync();
        await db.InsertAsync(new Item { Name = name });
        await transaction.CommitAsync();
    }

    [OneTimeSetUp]
    public static async Task RegisterConfigurationAndStartTheApplication()
    {
        DataConnection.AddOrSetConfiguration(ConfigurationName, ConnectionString, ProviderName);
        DataConnection.DefaultConfiguration = ConfigurationName;

        // A small application whose endpoint builds its context itself: nothing linq2db in its services.
        app = await new HostBuilder()
            .ConfigureWebHost(web => web
                .UseTestServer()
                .UseTestScopes()
                .Configure(application => application.Run(async context =>
                {
                    var shape = Enum.Parse<Construction>(context.Request.Query["shape"]!);
                    await WriteAndCommitAsync(shape, context.Request.Query["name"]!);
                    context.Response.StatusCode = StatusCodes.Status204NoContent;
                })))
            .StartAsync();
    }

    [OneTimeTearDown]
    public static async Task StopTheApplication()
    {
        if (app is not null)
            await app.StopAsync();
        app?.Dispose();
    }

    async Task AssertSeenByTheTestAndGoneAfterAsync(string suffix)
    {
        using (var db = NewShop())
            Assert.That(await NamesAsync(db), Is.EqualTo(new[] { suffix }), "the test sees what the application committed");
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task In_test_code_the_context_joins_the_tests_scope([Values] Construction shape)
    {
        await WriteAndCommitAsync(shape, Name("in-test"));

        await AssertSeenByTheTestAndGoneAfterAsync("in-test");
        Assert.That(Scope.Bypasses, Is.Empty);
    }

    [Test]
    public async Task In_a_request_of_the_test_the_context_joins_the_tests_scope([Values] Construction shape)
    {
        using var client = app!.GetTestClient();

        var response = await client.PostAsync($"/?shape={shape}&name={Uri.EscapeDataString(Name("in-request"))}", null);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NoContent), await response.Content.ReadAsStringAsync());
        await AssertSeenByTheTestAndGoneAfterAsync("in-request");
    }

    [Test]
    public async Task Outside_any_test_the_same_code_reaches_the_real_database([Values] Construction shape)
    {
        using (var db = NewShop())
            await db.InsertAsync(new Item { Name = Name("uncommitted") });

        // As a hosted service or the application's start-up does: in an execution context no test's flows into.
        Task<(bool Adopted, string[] Names)> outside;
        using (ExecutionContext.SuppressFlow())
        {
            outside = Task.Run(async () =>
            {
                await using var db = Build(shape);
                var names = await db.GetTable<Item>().Where(i => i.Name.StartsWith(Tag)).Select(i => i.Name).ToArrayAsync();
                return (db.OpenDbConnection() is TestScopeConnection, names);
            });
        }

        var (adopted, names) = await outside;
        Assert.That(adopted, Is.False, "a context built outside any test gets the connection linq2db created");
        Assert.That(names, Is.Empty, "it reads the database as committed: the test's uncommitted row is not there");
    }

    [Test]
    public async Task A_context_that_writes_to_another_database_fails_the_test_naming_it_and_the_way_out()
    {
        // The application's own configuration names a database of its own on the same server, not the run's: what it
        // writes there is committed for good, and the test must not pass as if it had been rolled back.
        var provider = Scope.Database.Provider;
        var other = $"other_{Guid.NewGuid():N}"[..20];
        var admin = provider.ForDatabase(Scope.Database.ServerConnectionString, null, TestDatabase.ApplicationName);
        await using (var connection = provider.CreateConnection(admin))
        {
            await connection.OpenAsync();
            await provider.CreateDatabaseAsync(connection, other, "a database of the application's own", CancellationToken.None);
        }

        try
        {
            await using var scope = await Scope.Database.BeginScopeAsync();
            using (scope.MakeCurrent())
            {
                await using var db = new DataConnection(new DataOptions().UseConnectionString(
                    Scope.Database.LinqToDBProvider, provider.ForDatabase(Scope.Database.ServerConnectionString, other, "the-application", kitConnection: false)));
                await db.ExecuteAsync("CREATE TABLE notes (id int PRIMARY KEY)");
                await db.ExecuteAsync("INSERT INTO notes VALUES (1)");
                Assert.That(await db.ExecuteAsync<int>("SELECT COUNT(*) FROM notes"), Is.EqualTo(1));
            }

            await scope.DisposeAsync();
            Assert.That(ScopedTest.BypassMessage(scope), Does.Contain($"wrote to database '{other}', not to the run's database '{Scope.Database.Name}'")
                .And.Contain("committed and outlives the test").And.Contain("TestRun.Database.ConnectionString")
                .And.Contain($"wrote in database '{other}': INSERT INTO notes").And.Not.Contain("SELECT COUNT"));
        }
        finally
        {
            await using var connection = provider.CreateConnection(admin);
            await connection.OpenAsync();
            provider.ClearPool(provider.ForDatabase(Scope.Database.ServerConnectionString, other, "the-application", kitConnection: false));
            await provider.DropDatabaseAsync(connection, other, CancellationToken.None);
        }
    }

    [Test]
    public async Task A_context_that_only_reads_another_database_is_left_alone()
    {
        await using var scope = await Scope.Database.BeginScopeAsync();
        using (scope.MakeCurrent())
        {
            var provider = Scope.Database.Provider;
            await using var db = new DataConnection(new DataOptions().UseConnectionString(
                Scope.Database.LinqToDBProvider, provider.ForDatabase(Scope.Database.ServerConnectionString, null, "the-application", kitConnection: false)));
            Assert.That(await db.ExecuteAsync<int>("SELECT 1"), Is.EqualTo(1));
        }

        await scope.DisposeAsync();
        Assert.That(ScopedTest.BypassMessage(scope), Is.Null, "a read of another database changes nothing there");
    }

    [Test]
    public async Task A_context_on_a_connection_the_application_makes_itself_fails_the_test_naming_that_cause()
    {
        await using var scope = await Scope.Database.BeginScopeAsync();
        using (scope.MakeCurrent())
        {
            var database = Scope.Database;
            await using var db = new DataConnection(new DataOptions().UseConnectionFactory(
                database.LinqToDBProvider, _ => database.Provider.CreateConnection(database.ConnectionString)));
            Assert.That(await db.GetTable<Item>().CountAsync(i => i.Name == Name("own")), Is.Zero);
        }

        await scope.DisposeAsync();
        Assert.That(ScopedTest.BypassMessage(scope), Does.Contain("It only read")
            .And.Contain("got its connection from the application (DataOptions.UseConnectionFactory or UseConnection)")
            .And.Contain("UseConnectionString"));
    }
}
