using Linq2DbTestKit;
using Linq2DbTestKit.AspNetCore;
using Linq2DbTestKit.NUnit;
using Microsoft.AspNetCore.Mvc.Testing;

namespace Consumer.Tests.Database;

/// <summary>The application under test, on the run's database; one for every test, each request in its test's scope.</summary>
static class Api
{
    static readonly Lazy<WebApplicationFactory<Program>> Factory = new(() => new WebApplicationFactory<Program>()
        .WithWebHostBuilder(builder => builder
            .UseSetting("ConnectionStrings:App", TestRun.Database.ConnectionString)
            .UseSetting("Database:Provider", TestRun.Database.Provider.Name))
        .WithTestScopes());

    public static HttpClient ClientFor(TestScope scope) => Factory.Value.CreateClient(scope);

    /// <summary>A client whose requests run in the scope, or the real-commit session, of the test that sends them.</summary>
    public static HttpClient Client() => Factory.Value.CreateClient();

    public static async Task DisposeAsync()
    {
        if (Factory.IsValueCreated)
            await Factory.Value.DisposeAsync();
    }
}
