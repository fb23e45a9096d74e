using System.Runtime.CompilerServices;
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

    public static TestScope Of(IServiceProvider provider, Type service) =>
        provider.GetRequiredService<RequestScope>().Scope ?? throw new InvalidOperationException(
            $"{service} was resolved outside a request sent with a test's client, so the kit cannot tell which test scope it belongs to. " +
            "Send the test's requests with factory.CreateClient(Scope). At start-up and in hosted services, nothing belongs to a test: " +
            "resolve linq2db services inside requests.");
}

/// <summary>Puts each request that carries a test scope into it, before the application's own middleware runs.</summary>
internal sealed class RequestScopeStartupFilter : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(async (context, nextMiddleware) =>
        {
            if (context.Request.Headers.TryGetValue(TestScopeHandler.Header, out var id))
            {
                var scope = TestScope.Find(id.ToString()) ?? throw new InvalidOperationException(
                    $"A request for test scope {id} arrived after that scope had ended: the test finished before its request did. Await every request inside the test.");
                await context.RequestServices.GetRequiredService<RequestScope>().EnterAsync(scope, context.RequestAborted);
            }

            await nextMiddleware(context);
        });
        next(app);
    };
}
