using Linq2DbTestKit.Internal;
using Testcontainers.PostgreSql;

namespace Linq2DbTestKit.PostgreSql;

/// <summary>A throwaway PostgreSQL server in a container, through Testcontainers; its resource reaper removes it if the process dies.</summary>
internal sealed class ContainerPostgreSqlServer(PostgreSqlContainer container) : ThrowawayServer
{
    public const string Image = "postgres:15";

    public override string ConnectionString => container.GetConnectionString();

    public override string Description => $"throwaway PostgreSQL container ({Image}) on {container.Hostname}:{container.GetMappedPublicPort(PostgreSqlBuilder.PostgreSqlPort)}";

    /// <exception cref="DotNet.Testcontainers.Builders.DockerUnavailableException">No Docker engine answers.</exception>
    public static async Task<ContainerPostgreSqlServer> StartAsync(CancellationToken cancellationToken)
    {
        var container = new PostgreSqlBuilder(Image).WithCommand("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=200").Build();
        await container.StartAsync(cancellationToken).ConfigureAwait(false);
        return new ContainerPostgreSqlServer(container);
    }

    public override ValueTask DisposeAsync() => container.DisposeAsync();
}
