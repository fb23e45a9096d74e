using System.Data.Common;
using LinqToDB;
using LinqToDB.Data;
using LinqToDB.Interceptors;

namespace Linq2DbTestKit.Internal;

/// <summary>
/// Hands linq2db the driver's own objects where it needs them for provider-specific work (binary COPY, SqlBulkCopy):
/// the real connection and the test's real transaction. One stateless instance serves every scope, so linq2db's
/// query cache sees one configuration however many scopes a run opens.
/// </summary>
internal sealed class ScopeInterceptor : UnwrapDataObjectInterceptor
{
    public static readonly ScopeInterceptor Instance = new();

    ScopeInterceptor()
    {
    }

    public override DbConnection UnwrapConnection(IDataContext dataContext, DbConnection connection)
    {
        if (connection is not ScopeConnection scoped)
            return connection;

        // linq2db gives SqlBulkCopy only a transaction the application began; without one, SqlBulkCopy refuses to run on a
        // connection in a transaction. Keeping the kit's connection makes linq2db copy with INSERT statements instead, in the test's transaction.
        if (scoped.Scope.Database.Provider.BulkCopyNeedsTransaction && dataContext is DataConnection { Transaction: null })
        {
            scoped.Scope.TraceLog.Add($"{scoped.Origin}: no application transaction, so linq2db cannot hand SqlBulkCopy the test's: provider-specific bulk copy falls back to INSERT statements");
            return connection;
        }

        return scoped.Scope.Native;
    }

    public override DbTransaction UnwrapTransaction(IDataContext dataContext, DbTransaction transaction) =>
        transaction is SavepointTransaction savepoint ? savepoint.Owner.Scope.Outer : transaction;

    public override DbCommand UnwrapCommand(IDataContext dataContext, DbCommand command)
    {
        if (command is not ScopeCommand scoped)
            return command;

        scoped.Inner.Transaction = scoped.ScopeConnection.Scope.Outer;
        return scoped.Inner;
    }
}
