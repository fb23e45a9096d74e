using System.Net.Sockets;

namespace Linq2DbTestKit.Internal;

/// <summary>A database server the kit started for one run, and stops when the run's database is disposed.</summary>
internal abstract class ThrowawayServer : IAsyncDisposable
{
    /// <summary>A connection string to the server's administrative database, as the kit's default would be.</summary>
    public abstract string ConnectionString { get; }

    /// <summary>What it is, for the run's messages: "PostgreSQL 15 from /usr/lib/postgresql/15/bin on 127.0.0.1:40123".</summary>
    public abstract string Description { get; }

    public abstract ValueTask DisposeAsync();

    /// <summary>Whether something accepts connections at <paramref name="host"/>:<paramref name="port"/> within a second.</summary>
    public static async Task<bool> AnswersAsync(string host, int port, CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(1));
        try
        {
            await client.ConnectAsync(host, port, timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception exception) when (exception is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>A port on loopback that nothing listens on now.</summary>
    public static int FreePort()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }
}
