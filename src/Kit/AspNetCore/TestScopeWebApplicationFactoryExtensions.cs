using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.Mvc.Testing.Handlers;
using Microsoft.AspNetCore.TestHost;

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
    /// <para>The requests of one test run one at a time, as on a server with a single worker: they share the test's one
    /// connection, and their transactions must nest. Requests of different tests run in parallel.</para>
    /// </remarks>
    public static WebApplicationFactory<TProgram> WithTestScopes<TProgram>(this WebApplicationFactory<TProgram> factory)
        where TProgram : class
    {
        ArgumentNullException.ThrowIfNull(factory);
        return factory.WithWebHostBuilder(builder => builder.UseTestScopes());
    }

    /// <summary>The same as <see cref="WithTestScopes{TProgram}"/>, on the web host builder (inside <c>ConfigureWebHost</c>).</summary>
    public static IWebHostBuilder UseTestScopes(this IWebHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.ConfigureTestServices(LinqToDBRegistrations.BindToTestScopes);
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

        var options = factory.ClientOptions;
        var handlers = new List<DelegatingHandler>();
        if (options.AllowAutoRedirect)
            handlers.Add(new RedirectHandler(options.MaxAutomaticRedirections));
        if (options.HandleCookies)
            handlers.Add(new CookieContainerHandler());
        handlers.Add(new TestScopeHandler(scope));
        return factory.CreateDefaultClient(options.BaseAddress, [.. handlers]);
    }
}
