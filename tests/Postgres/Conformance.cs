using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.Conformance.Suites;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.Postgres;

public sealed class Problem : ProblemSuite;

[TestFixture(Mode.Sync, TransactionCalls.TransactionObject)]
[TestFixture(Mode.Sync, TransactionCalls.DataConnectionMethods)]
[TestFixture(Mode.Async, TransactionCalls.TransactionObject)]
[TestFixture(Mode.Async, TransactionCalls.DataConnectionMethods)]
public sealed class Nesting(Mode mode, TransactionCalls calls) : NestingSuite(mode, calls);

[TestFixture(Mode.Sync)]
[TestFixture(Mode.Async)]
public sealed class RawAdo(Mode mode) : RawAdoSuite(mode);

[TestFixture(Mode.Sync)]
[TestFixture(Mode.Async)]
public sealed class ErrorRecovery(Mode mode) : ErrorRecoverySuite(mode);

[TestFixture(Mode.Sync)]
[TestFixture(Mode.Async)]
public sealed class BulkCopy(Mode mode) : BulkCopySuite(mode);

public sealed class ParallelIsolation : ParallelIsolationSuite;

public sealed class Trace : TraceSuite;
