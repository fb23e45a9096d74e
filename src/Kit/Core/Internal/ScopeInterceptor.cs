using System.Data.Common;
using LinqToDB;
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

    public override DbConnection UnwrapConnection(IDataContext dataContext, DbConnection connection) =>
        connection is ScopeConnection scoped ? scoped.Scope.Native : connection;

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
