namespace Linq2DbTestKit.AspNetCore;

/// <summary>Marks every request of a test's client with the test's scope.</summary>
internal sealed class TestScopeHandler(TestScope scope) : DelegatingHandler
{
    public const string Header = "X-Linq2DbTestKit-Scope";

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.Remove(Header);
        request.Headers.Add(Header, scope.Id);
        return base.SendAsync(request, cancellationToken);
    }
}
