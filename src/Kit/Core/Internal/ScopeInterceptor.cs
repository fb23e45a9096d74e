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

    /// <remarks>
    /// Inside a bulk copy (linq2db reports each as an activity, <see cref="BulkCopyActivity"/>) the copy takes the scope's
    /// connection like a statement. linq2db hands <c>SqlBulkCopy</c> only a transaction the application began, and
    /// <c>SqlBulkCopy</c> refuses a connection in a transaction it was not given: when the application began none, the
    /// kit begins one for the copy (a savepoint), so that the driver's bulk copy runs natively in the test's transaction.
    /// </remarks>
    public override DbConnection UnwrapConnection(IDataContext dataContext, DbConnection connection)
    {
        if (connection is not TestScopeConnection scoped)
            return connection;

        if (BulkCopyActivity.Current is { } bulkCopy)
            return bulkCopy.Begin(scoped, dataContext as DataConnection);

        return scoped.Scope.Native;
    }

    public override DbTransaction UnwrapTransaction(IDataContext dataContext, DbTransaction transaction) =>
        transaction is SavepointTransaction savepoint ? savepoint.Owner.Scope.Outer : transaction;

    public override DbCommand UnwrapCommand(IDataContext dataContext, DbCommand command)
    {
        if (command is not ScopeCommand scoped)
            return command;

        scoped.Inner.Transaction = scoped.Handle.Scope.Outer;
        return scoped.Inner;
    }
}
