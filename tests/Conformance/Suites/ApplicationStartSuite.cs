using System.Net;
using Linq2DbTestKit.AspNetCore;
using Linq2DbTestKit.NUnit;
using LinqToDB.Data;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// The application's own start-up work is not blamed on a test, however late the application starts: reads and writes
/// at start-up run outside every test's flow. Starting it from inside a test's own flow, where its start-up would run in
/// that test's scope, fails with the way out. And <c>WithTestScopes()</c> never binds nothing silently.
/// </summary>
public abstract class ApplicationStartSuite : ConformanceTest
{
    /// <summary>Start-up work of the application: it reads and writes the run's database on a connection of its own.</summary>
    sealed class StartUpWork(StartUpWork.Record record) : IHostedService
    {
        public sealed class Record
        {
            public TestScope? ScopeSeen { get; set; }

            public bool Ran { get; set; }
        }

        public async Task StartAsync(CancellationToken cancellationToken)
        {
            record.ScopeSeen = TestScope.Current;
            var database = TestRun.Database;
            await using var connection = database.Provider.CreateConnection(database.ConnectionString);
            await connection.OpenAsync(cancellationToken);
            await using var command = connection.CreateCommand();
            command.CommandText = database.Provider.Name == "postgres"
                ? "SELECT COUNT(*) FROM items; CREATE TEMPORARY TABLE start_up_work (id int); INSERT INTO start_up_work VALUES (1)"
                : "SELECT COUNT(*) FROM items; CREATE TABLE #start_up_work (id int); INSERT INTO #start_up_work VALUES (1)";
            await command.ExecuteNonQueryAsync(cancellationToken);

#pragma warning disable CS0618 // The shape applications use.
            using var db = new DataConnection(database.LinqToDBProvider, database.ConnectionString);
#pragma warning restore CS0618
            _ = db.Execute<int>("SELECT COUNT(*) FROM items");
            record.Ran = true;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    static WebApplicationFactory<Program> ProfilesApi(StartUpWork.Record record) => new WebApplicationFactory<Program>()
        .WithWebHostBuilder(builder => builder
            .UseSetting("Database:Provider", TestRun.Database.Provider.Name)
            .UseSetting("ConnectionStrings:Profiles", TestRun.Database.ConnectionString)
            .UseSetting("Database:MigrateOnStartup", "true")
            .ConfigureTestServices(services => services.AddSingleton(record).AddHostedService<StartUpWork>()))
        .WithTestScopes();

    [Test]
    public async Task An_application_first_started_by_a_tests_client_reads_and_writes_at_start_up_without_failing_the_test()
    {
        var record = new StartUpWork.Record();
        await using var factory = ProfilesApi(record);

        using var client = factory.CreateClient(Scope);
        var response = await client.GetAsync("/api/profiles");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(record.Ran, Is.True, "the start-up work ran: migrations, then the hosted service's reads and writes");
        Assert.That(record.ScopeSeen, Is.Null, "start-up ran outside the test's flow");
        Assert.That(Scope.Bypasses, Is.Empty, "nothing of the start-up is attributed to the test");
    }

    [Test]
    public async Task What_an_application_first_started_by_a_tests_client_migrates_at_start_up_is_taken_as_prepared_not_as_a_leak()
    {
        // A run's database of its own, empty when prepared, which the application migrates as it starts.
        var provider = Scope.Database.Provider;
        await using var database = await TestDatabase.CreateAsync(provider, TestDatabaseOptions.FromEnvironment(provider) with
        {
            ConnectionString = Scope.Database.ServerConnectionString,
            CheckForLeaks = true,
        });
        await database.RecordPreparedStateAsync();
        await using var factory = new WebApplicationFactory<Program>()
            .WithWebHostBuilder(builder => builder
                .UseSetting("Database:Provider", provider.Name)
                .UseSetting("ConnectionStrings:Profiles", database.ConnectionString)
                .UseSetting("Database:MigrateOnStartup", "true"))
            .WithTestScopes();

        using var client = factory.CreateClient(Scope);

        Assert.That(await database.FindLeaksAsync(), Is.Null, "what the application committed as it started, its migrations, is prepared, not leaked");
        Assert.That(string.Join("\n", database.TakeNotes()), Does.Contain("profiles").And.Contain("a new table"), "the run's output says what the start-up changed");
    }

    [Test]
    public async Task Starting_the_application_inside_a_tests_own_flow_fails_with_the_way_out()
    {
        await using var factory = ProfilesApi(new StartUpWork.Record());

        Assert.That(() => factory.CreateClient(), Throws.InvalidOperationException
            .With.Message.Contains("is starting inside a test")
            .And.Message.Contains("factory.CreateClient(Scope)"));
    }

    [Test]
    public async Task Binding_nothing_with_the_interception_off_fails_the_first_request_with_what_to_do()
    {
        var provider = Scope.Database.Provider;
        await using var database = await TestDatabase.CreateAsync(provider, TestDatabaseOptions.FromEnvironment(provider) with
        {
            ConnectionString = Scope.Database.ServerConnectionString,
            ExistingDatabase = Scope.Database.Name,
            AllowExistingDatabase = true,
            InterceptConnections = false,
        });
        Task<IHost> starting;
        using (ExecutionContext.SuppressFlow())
        {
            starting = Task.Run(() => new HostBuilder()
                .ConfigureWebHost(web => web
                    .UseTestServer()
                    .UseTestScopes()
                    .Configure(application => application.Run(context => context.Response.WriteAsync("an application with nothing linq2db in its services"))))
                .StartAsync());
        }

        using var app = await starting;
        await using var scope = await database.BeginScopeAsync();
        using var client = app.GetTestClient();

        Task<HttpResponseMessage> request;
        using (scope.MakeCurrent())
            request = client.GetAsync("/");

        Assert.That(() => request, Throws.InvalidOperationException
            .With.Message.Contains("found no linq2db registration")
            .And.Message.Contains(TestKitEnvironment.InterceptConnectionsVariable));
    }
}
