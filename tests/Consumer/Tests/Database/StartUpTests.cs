using Linq2DbTestKit;
using Linq2DbTestKit.AspNetCore;
using Linq2DbTestKit.NUnit;
using Linq2DbTestKit.SqlServer;
using LinqToDB.Data;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NUnit.Framework;

namespace Consumer.Tests.Database;

/// <summary>
/// An application that seeds its database as it starts, first started by a test's client: what its start-up commits is
/// part of the world the tests begin from, not a leak. Were it taken for one, the run's leak check would fail this run.
/// </summary>
public sealed class StartUpTests : DatabaseTest
{
    /// <summary>The application's start-up work: a table of its settings, created and seeded where missing, committed.</summary>
    sealed class SeedSettings : IHostedService
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            await using var db = new DataConnection(Run.AppOptions(TestRun.Database.ConnectionString));
            await db.ExecuteAsync(TestRun.Database.Provider == SqlServerDatabaseProvider.Instance
                ? "IF OBJECT_ID('app_settings') IS NULL CREATE TABLE app_settings (name nvarchar(100) PRIMARY KEY, value nvarchar(100) NOT NULL); " +
                  "IF NOT EXISTS (SELECT 1 FROM app_settings WHERE name = 'theme') INSERT INTO app_settings VALUES ('theme', 'dark')"
                : "CREATE TABLE IF NOT EXISTS app_settings (name text PRIMARY KEY, value text NOT NULL); " +
                  "INSERT INTO app_settings VALUES ('theme', 'dark') ON CONFLICT DO NOTHING", cancellationToken);
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    [Test]
    public async Task What_the_application_seeds_as_it_starts_is_there_and_no_leak()
    {
        await using var factory = new WebApplicationFactory<Program>()
            .WithWebHostBuilder(builder => builder
                .UseSetting("ConnectionStrings:App", TestRun.Database.ConnectionString)
                .UseSetting("Database:Provider", TestRun.Database.Provider.Name)
                .ConfigureTestServices(services => services.AddHostedService<SeedSettings>()))
            .WithTestScopes();

        using var client = factory.CreateClient(Scope);

        Assert.That(await Db.ExecuteAsync<string>("SELECT value FROM app_settings WHERE name = 'theme'"), Is.EqualTo("dark"),
            "the test sees what the application seeded as it started");
    }
}
