namespace Linq2DbTestKit;

/// <summary>
/// The kit cannot run with the configuration it was given: an unknown provider name, a malformed connection string,
/// a server it cannot reach, a database it may not write into. The message names the cause, the environment variable
/// or setting involved and the fix. It never contains a password.
/// </summary>
public sealed class TestKitConfigurationException : Exception
{
    /// <summary>Creates the exception with a message that names the cause and the fix.</summary>
    public TestKitConfigurationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message that names the cause and the fix, and the exception behind it.</summary>
    public TestKitConfigurationException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
