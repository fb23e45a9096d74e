namespace Linq2DbTestKit;

/// <summary>
/// Whether and how the kit starts a throwaway server for a run when no server is configured and nothing answers at
/// the provider's default address: <see cref="TestKitEnvironment.StartServerVariable"/>, or
/// <see cref="TestDatabaseOptions.StartServer"/>.
/// </summary>
public enum ServerStart
{
    /// <summary>A container when a Docker engine answers, else the database's own binaries when they are installed (PostgreSQL).</summary>
    Auto,

    /// <summary>A container only (Testcontainers).</summary>
    Docker,

    /// <summary>The database's own binaries only: <c>initdb</c> and <c>pg_ctl</c> (PostgreSQL).</summary>
    LocalBinaries,

    /// <summary>Never: the run fails when nothing answers.</summary>
    Off,
}
