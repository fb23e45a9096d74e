// The conformance suite as NUnit fixtures. This file is compiled into each provider's test project (see
// tests/Directory.Build.props), not into the Conformance library: every provider runs the same fixtures, unchanged.
using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.Conformance.Suites;
using Linq2DbTestKit.NUnit;
using NUnit.Framework;

[assembly: Parallelizable(ParallelScope.Fixtures)]
[assembly: LevelOfParallelism(4)]

namespace Linq2DbTestKit.Tests;

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

public sealed class DatabaseLifecycle : DatabaseLifecycleSuite;

[Explicit("fails on purpose; NUnitIntegration runs it in a child test run")]
public sealed class DeliberateFailure : DeliberateFailureSuite;

[Explicit("fails on purpose; NUnitIntegration runs it in a child test run")]
public sealed class DeliberateFailureOutsideDatabaseTest : DeliberateFailureOutsideDatabaseTestSuite;

[Explicit("fails on purpose; NUnitIntegration runs it in a child test run")]
public sealed class DeliberateFailureInASeed : DeliberateFailureInASeedSuite;

[Explicit("commits a row on purpose; NUnitIntegration runs it in a child test run")]
public sealed class DeliberateLeak : DeliberateLeakSuite;

[Explicit("a stress of NUnit's scheduling; NUnitIntegration runs it in child test runs")]
[TestFixtureSource(typeof(ContendedSeedSuite), nameof(ContendedSeedSuite.Instances))]
public sealed class ContendedSeedFirst(int instance) : ContendedSeedSuite(instance);

[Explicit("a stress of NUnit's scheduling; NUnitIntegration runs it in child test runs")]
[TestFixtureSource(typeof(ContendedSeedSuite), nameof(ContendedSeedSuite.Instances))]
public sealed class ContendedSeedSecond(int instance) : ContendedSeedSuite(instance);

public sealed class NUnitIntegration : NUnitIntegrationSuite
{
    protected override string DeliberateFailureFixture => typeof(DeliberateFailure).FullName!;

    protected override string DeliberateLeakFixture => typeof(DeliberateLeak).FullName!;

    protected override string ContendedSeedFixtures => "Linq2DbTestKit.Tests.ContendedSeed";
}

public sealed class ProfilesApi : ProfilesApiSuite;

public sealed class RegistrationShapes : RegistrationShapesSuite;

public sealed class ConstructionShapes : ConstructionShapesSuite;

public sealed class ApplicationStart : ApplicationStartSuite;

public sealed class Truth : TruthSuite;

public sealed class ParallelQueries : ParallelQueriesSuite;

public sealed class TransactionEnded : TransactionEndedSuite;

public sealed class Misuse : MisuseSuite;

public sealed class RealCommitSessions : RealCommitSessionSuite;

public sealed class RealCommitTests : RealCommitsAttributeSuite;

[RealCommits]
public sealed class RealCommitsMarkedClass : RealCommitsOnClassSuite
{
    protected override bool ClassIsMarked => true;
}

public sealed class RealCommitsUnmarkedClass : RealCommitsOnClassSuite
{
    protected override bool ClassIsMarked => false;
}

public sealed class SharedSeed : SharedSeedSuite;

public sealed class ModelBased : ModelBasedSuite;

[Explicit("waits to be killed; Faults runs it in a child test run")]
public sealed class KilledMidScope : KilledMidScopeSuite;
