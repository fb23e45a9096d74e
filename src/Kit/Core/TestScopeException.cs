using System.Data.Common;

namespace Linq2DbTestKit;

/// <summary>
/// A test scope cannot go on: an earlier statement aborted the test's transaction, the connection to the server was
/// lost, or something ended the test's transaction behind the kit's back. The message says which statement did it and
/// what to change. It derives from <see cref="DbException"/>, so application code that catches database errors still
/// catches it.
/// </summary>
public sealed class TestScopeException : DbException
{
    /// <summary>Creates the exception with a message that names the cause and the fix.</summary>
    public TestScopeException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message that names the cause and the fix, and the driver's exception behind it.</summary>
    public TestScopeException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
