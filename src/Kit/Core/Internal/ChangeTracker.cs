using System.Data.Common;

namespace Linq2DbTestKit.Internal;

/// <summary>
/// A run's record of which tables real-commit sessions changed, and how to put them back as they were once prepared.
/// The provider installs it in the run's database the first time a session begins: triggers that note each written
/// table, and a copy of each table that held rows. A reset then costs what the session changed, not the schema's size.
/// </summary>
internal abstract class ChangeTracker
{
    /// <summary>
    /// Readies tracking for a session. Changes committed since the last reset by no session (leaks) are forgotten, not
    /// restored, so that the leak check still finds them.
    /// </summary>
    /// <returns>The tables changed outside any session since the last reset.</returns>
    public abstract Task<IReadOnlyList<string>> BeginAsync(DbConnection connection, CancellationToken cancellationToken);

    /// <summary>Returns every table the session changed, and the sequences they own, to their prepared state, in one transaction.</summary>
    /// <returns>The tables it restored.</returns>
    /// <exception cref="TestScopeException">The reset failed; the message says why and what may be left.</exception>
    public abstract Task<IReadOnlyList<string>> ResetAsync(DbConnection connection, CancellationToken cancellationToken);
}
