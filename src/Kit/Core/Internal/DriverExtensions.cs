using System.Data.Common;

namespace Linq2DbTestKit.Internal;

/// <summary>Small helpers the providers share for talking to their drivers.</summary>
internal static class DriverExtensions
{
    /// <summary>The first exception of type <typeparamref name="T"/> in the chain of inner exceptions, starting with <paramref name="exception"/>.</summary>
    public static T? Find<T>(this Exception exception)
        where T : Exception
    {
        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            if (current is T found)
                return found;
        }

        return null;
    }

    /// <summary>Runs one of the kit's own administrative statements.</summary>
    public static async Task RunAsync(this DbConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
