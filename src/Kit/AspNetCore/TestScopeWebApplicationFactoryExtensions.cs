using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.Mvc.Testing.Handlers;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Linq2DbTestKit.AspNetCore;

/// <summary>
/// Runs an ASP.NET Core application's HTTP requests inside the calling test's <see cref="TestScope"/>.
/// </summary>
/// <example>
/// <code>
/// static readonly WebApplicationFactory&lt;Program&gt; App = new WebApplicationFactory&lt;Program&gt;().WithTestScopes();
///
/// [Test]
/// public async Task Creates_a_profile()
/// {
///     using var client = App.CreateClient(Scope);
///     var response = await client.PostAsJsonAsync("/api/profiles", new { name = "ada" });
///     ...
/// }
/// </code>
/// </example>
public static class TestScopeWebApplicationFactoryExtensions
{
    /// <summary>
    /// A factory whose application resolves its linq2db registrations — the context types, <c>DataOptions&lt;TContext&gt;</c>,
    /// <c>DataOptions</c>, <c>IDataContext</c> and <c>IDataContextFactory&lt;TContext&gt;</c> — from the test scope of each
    /// request. Create the factory once and share it between tests; each test sends its requests with
    /// <see cref="CreateClient{TProgram}(WebApplicationFactory{TProgram}, TestScope)"/>.
    /// </summary>
    /// <remarks>
    /// <para>The application's own options are kept (mapping schema, interceptors, provider options); only the connection
    /// becomes the scope's. Registrations with a singleton lifetime become scoped: a singleton would outlive the test.</para>
    /// <para>Contexts the application builds itself (from a connection string or a configuration name) join the test's
    /// scope too, through the kit's interception of linq2db connections; see <see cref="TestScope.Current"/>.</para>
    /// <para>The requests of one test run one at a time, as on a server with a single worker: they share the test's one
    /// connection, and their transactions must nest. Requests of different tests run in parallel.</para>
    /// </remarks>
    public static WebApplicationFactory<TProgram> WithTestScopes<TProgram>(this WebApplicationFactory<TProgram> factory)
        where TProgram : class
    {
        ArgumentNullException.ThrowIfNull(factory);
        return factory.WithWebHostBuilder(builder => builder.UseTestScopes());
    }

    /// <summary>
    /// The same as <see cref="WithTestScopes{TProgram}"/>, on the web host builder: call it in <c>ConfigureWebHost</c> of
    /// a <c>WebApplicationFactory</c> subclass.
    /// </summary>
    public static IWebHostBuilder UseTestScopes(this IWebHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.ConfigureTestServices(services =>
        {
            if (TestScope.Current is { } scope)
            {
                throw new InvalidOperationException(
                    $"The application under test is starting inside a test ({scope}): its start-up (migrations, seed data, hosted services) " +
                    "would run in that test's scope and be rolled back with it. Start it outside the tests: create the test's clients with " +
                    "factory.CreateClient(Scope), which starts the application outside any test, or touch factory.Server once in a [OneTimeSetUp].");
            }

            // What the start-up commits from here on (migrations, seed data) becomes part of the prepared state once the application has started.
            if (TestDatabase.WatchApplicationStart() is { } accept)
                services.AddHostedService(provider => new ApplicationStartAccepted(accept, provider.GetRequiredService<IHostEnvironment>().ApplicationName));

            LinqToDBRegistrations.BindToTestScopes(services);
            // A request then runs in the execution context of the test that sent it, where the test's scope is current.
            services.Configure<TestServerOptions>(options => options.PreserveExecutionContext = true);
        });
    }

    /// <summary>
    /// An HTTP client whose requests run inside <paramref name="scope"/>: what the application writes is visible to the
    /// test, and rolled back with it. It follows redirects and keeps cookies as <c>CreateClient()</c> does.
    /// </summary>
    public static HttpClient CreateClient<TProgram>(this WebApplicationFactory<TProgram> factory, TestScope scope)
        where TProgram : class
    {
        ArgumentNullException.ThrowIfNull(factory);
        ArgumentNullException.ThrowIfNull(scope);

        StartOutsideTests(factory);
        var options = factory.ClientOptions;
        var handlers = new List<DelegatingHandler>();
        if (options.AllowAutoRedirect)
            handlers.Add(new RedirectHandler(options.MaxAutomaticRedirections));
        if (options.HandleCookies)
            handlers.Add(new CookieContainerHandler());
        handlers.Add(new TestScopeHandler(scope));
        return factory.CreateDefaultClient(options.BaseAddress, [.. handlers]);
    }

    /// <summary>
    /// Starts the application, if it has not started, in an execution context of its own: its start-up and the hosted
    /// services it starts must not inherit the calling test's scope.
    /// </summary>
    static void StartOutsideTests<TProgram>(WebApplicationFactory<TProgram> factory)
        where TProgram : class
    {
        if (TestScope.Current is null)
        {
            _ = factory.Server;
            return;
        }

        using (ExecutionContext.SuppressFlow())
            Task.Run(() => factory.Server).GetAwaiter().GetResult();
    }
}
