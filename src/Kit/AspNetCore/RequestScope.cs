using System.Runtime.CompilerServices;
using Linq2DbTestKit.Internal;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Linq2DbTestKit.AspNetCore;

/// <summary>
/// The test scope of one HTTP request, held for the request's lifetime. The requests of one scope take turns: it is
/// created first in the request's service scope, so it is disposed last, after the request's contexts are.
/// </summary>
internal sealed class RequestScope : IDisposable
{
    static readonly ConditionalWeakTable<TestScope, SemaphoreSlim> Turns = new();

    SemaphoreSlim? _turn;

    public TestScope? Scope { get; private set; }

    public async Task EnterAsync(TestScope scope, CancellationToken cancellationToken)
    {
        var turn = Turns.GetValue(scope, _ => new SemaphoreSlim(1, 1));
        await turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        _turn = turn;
        Scope = scope;
    }

    public void Dispose() => Interlocked.Exchange(ref _turn, null)?.Release();

    /// <summary>
    /// The scope a linq2db service resolved in <paramref name="provider"/> belongs to; <see langword="null"/> while a
    /// real-commit test runs, whose requests reach the real database through the application's own registrations.
    /// </summary>
    public static TestScope? Of(IServiceProvider provider, Type service) =>
        provider.GetRequiredService<RequestScope>().Scope ?? TestScope.Current ?? (RealCommitSession.AnyActive ? null : throw new InvalidOperationException(
            $"{service} was resolved outside a request sent by a test, so the kit cannot tell which test scope it belongs to. " +
            "Send the test's requests with factory.CreateClient(Scope) or factory.CreateClient() inside the test. At start-up and in hosted " +
            "services nothing belongs to a test: resolve linq2db services inside requests, or build contexts from a connection string there."));
}

/// <summary>
/// Puts each request of a test into the test's scope, before the application's own middleware runs: the scope named by
/// the request's header (<c>CreateClient(Scope)</c>), or else the scope current in the test that sent it (the test
/// server keeps the sender's execution context).
/// </summary>
internal sealed class RequestScopeStartupFilter(RegistrationsBound bound) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(async (context, nextMiddleware) =>
        {
            var scope = TestScope.Current;
            if (context.Request.Headers.TryGetValue(TestScopeHandler.Header, out var id))
            {
                scope = TestScope.Find(id.ToString()) ?? throw new InvalidOperationException(
                    $"A request for test scope {id} arrived after that scope had ended: the test finished before its request did. Await every request inside the test.");
            }

            if (scope is null)
            {
                await nextMiddleware(context);
                return;
            }

            if (scope.Database.InterceptsConnections)
                ConnectionInterception.EnsureInstalled();
            else if (bound.Count == 0)
                throw new InvalidOperationException(
                    "WithTestScopes() found no linq2db registration in the application's services to bind to the test's scope (no context type, " +
                    "DataOptions, DataOptions<T>, IDataContext or IDataContextFactory<T>), and the kit's interception of contexts the application " +
                    $"builds itself is off ({TestKitEnvironment.InterceptConnectionsVariable}=false or TestDatabaseOptions.InterceptConnections = false). " +
                    "Nothing the application does would run in the test's scope. Turn the interception back on, or register the application's linq2db context in its services.");

            await context.RequestServices.GetRequiredService<RequestScope>().EnterAsync(scope, context.RequestAborted);
            using (scope.MakeCurrent())
                await nextMiddleware(context);
        });
        next(app);
    };
}

/// <summary>How many of the application's registrations <see cref="LinqToDBRegistrations.BindToTestScopes"/> bound.</summary>
internal sealed record RegistrationsBound(int Count);
