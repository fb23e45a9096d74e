using Linq2DbTestKit.Internal;
using Testcontainers.MsSql;

namespace Linq2DbTestKit.SqlServer;

/// <summary>A throwaway SQL Server in a container, through Testcontainers; its resource reaper removes it if the process dies.</summary>
internal sealed class ContainerSqlServer(MsSqlContainer container) : ThrowawayServer
{
    public const string Image = "mcr.microsoft.com/mssql/server:2022-CU16-ubuntu-22.04";

    public override string ConnectionString => container.GetConnectionString();

    public override string Description => $"throwaway SQL Server container ({Image}) on {container.Hostname}:{container.GetMappedPublicPort(MsSqlBuilder.MsSqlPort)}";

    /// <exception cref="DotNet.Testcontainers.Builders.DockerUnavailableException">No Docker engine answers.</exception>
    public static async Task<ContainerSqlServer> StartAsync(CancellationToken cancellationToken)
    {
        var container = new MsSqlBuilder(Image).Build();
        await container.StartAsync(cancellationToken).ConfigureAwait(false);
        return new ContainerSqlServer(container);
    }

    public override ValueTask DisposeAsync() => container.DisposeAsync();
}
