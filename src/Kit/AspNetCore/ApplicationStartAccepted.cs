using Microsoft.Extensions.Hosting;

namespace Linq2DbTestKit.AspNetCore;

/// <summary>
/// Once the application under test has started, takes what its start-up committed to the run's database (migrations run
/// after the host is built, seed data, hosted services' start-up) into the prepared state that the run's leak check
/// compares with: an application that migrates as it starts, first started by a test's client, is not a leak.
/// </summary>
/// <remarks>
/// Registered after the application's own services, its <see cref="StartedAsync"/> runs once every hosted service has
/// started. What a background service writes later is not start-up, and the leak check still reports it.
/// </remarks>
internal sealed class ApplicationStartAccepted(Action<string> accept, string application) : IHostedLifecycleService
{
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        accept($"The application under test ({application})");
        return Task.CompletedTask;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
