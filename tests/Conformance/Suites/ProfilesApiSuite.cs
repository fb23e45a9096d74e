using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.RegularExpressions;
using Linq2DbTestKit.AspNetCore;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Async;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using NUnit.Framework;
using ProfilesApi.Api;
using ProfilesApi.Data;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// The sample API's HTTP requests run inside the test's scope: what an endpoint commits is visible to the test and gone
/// after it, the test and the API see each other's writes, and tests run in any order and in parallel.
/// </summary>
[Parallelizable(ParallelScope.All)]
public abstract partial class ProfilesApiSuite : ConformanceTest
{
    static readonly Lazy<WebApplicationFactory<Program>> Factory = new(() => new WebApplicationFactory<Program>()
        .WithWebHostBuilder(builder => builder
            .UseSetting("Database:Provider", TestRun.Database.Provider.Name)
            .UseSetting("ConnectionStrings:Profiles", TestRun.Database.ConnectionString)
            .UseSetting("Database:MigrateOnStartup", "false"))
        .WithTestScopes());

    HttpClient? _client;

    HttpClient Api => _client ??= Factory.Value.CreateClient(Scope);

    [OneTimeTearDown]
    public static async Task StopApi()
    {
        if (Factory.IsValueCreated)
            await Factory.Value.DisposeAsync();
    }

    [TearDown]
    public void DisposeClient() => _client?.Dispose();

    AppDataConnection AppDb() => new(Scope.OptionsFor<AppDataConnection>());

    async Task<Profile> CreateAsync(string name)
    {
        var response = await Api.PostAsJsonAsync("/api/profiles", new NewProfile(name));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<Profile>())!;
    }

    async Task<Profile[]> ListAsync() => (await Api.GetFromJsonAsync<Profile[]>("/api/profiles"))!;

    async Task AssertEmptyAsync() =>
        Assert.That(await ListAsync(), Is.Empty, "the test starts with an empty table: nothing of another test is visible");

    async Task EndScopeAndAssertNoProfilesLeftAsync()
    {
        await Scope.DisposeAsync();
        Assert.That(await Outside.CountAsync("profiles", Tag), Is.Zero, "profiles of this test remain after its scope ended");
    }

    [Test]
    public async Task Post_then_list_then_get_by_id()
    {
        await AssertEmptyAsync();

        var created = await CreateAsync(Name("ada"));

        Assert.That(created.Id, Is.Positive);
        Assert.That(created.Name, Is.EqualTo(Name("ada")));
        Assert.That((await ListAsync()).Select(p => p.Name), Is.EqualTo(new[] { Name("ada") }));
        var fetched = await Api.GetFromJsonAsync<Profile>($"/api/profiles/{created.Id}");
        Assert.That(fetched!.Name, Is.EqualTo(Name("ada")));
        await EndScopeAndAssertNoProfilesLeftAsync();
    }

    [Test]
    public async Task Another_test_posting_the_same_name_starts_from_an_empty_table_too()
    {
        await AssertEmptyAsync();

        await CreateAsync(Name("ada"));

        Assert.That(await ListAsync(), Has.Length.EqualTo(1));
    }

    [Test]
    public async Task The_api_reads_what_the_test_wrote_directly()
    {
        long id;
        using (var db = AppDb())
            id = await db.InsertWithInt64IdentityAsync(new Profile { Name = Name("direct") });

        var fetched = await Api.GetFromJsonAsync<Profile>($"/api/profiles/{id}");

        Assert.That(fetched!.Name, Is.EqualTo(Name("direct")));
        await EndScopeAndAssertNoProfilesLeftAsync();
    }

    [Test]
    public async Task The_test_reads_directly_what_the_api_wrote()
    {
        var created = await CreateAsync(Name("via-api"));

        using var db = AppDb();
        var row = await db.Profiles.SingleAsync(p => p.Id == created.Id);

        Assert.That(row.Name, Is.EqualTo(Name("via-api")));
        await EndScopeAndAssertNoProfilesLeftAsync();
    }

    [Test]
    public async Task A_duplicate_name_is_a_conflict_and_the_scope_goes_on()
    {
        await CreateAsync(Name("ada"));

        var duplicate = await Api.PostAsJsonAsync("/api/profiles", new NewProfile(Name("ada")));

        Assert.That(duplicate.StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
        Assert.That(duplicate.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
        await CreateAsync(Name("bob"));
        Assert.That((await ListAsync()).Select(p => p.Name), Is.EqualTo(new[] { Name("ada"), Name("bob") }));
    }

    [Test]
    public async Task A_test_transaction_rolled_back_around_requests_that_committed_fails_the_test()
    {
        // Each request commits its own transaction; the application context of the test began one before them, on
        // another connection. In production the requests' commits stay; in the scope the test's rollback takes them.
        await using var db = AppDb();
        var transaction = await db.BeginTransactionAsync();
        await CreateAsync(Name("first"));
        await CreateAsync(Name("second"));
        await transaction.RollbackAsync();

        Assert.That(Scope.Divergences, Has.Count.EqualTo(2).And.All.Contains("committed its transaction").And.All.Contains("would have kept what"));
        Assert.That(async () => await Scope.DisposeAsync(), Throws.InstanceOf<TestScopeException>().With.Message.Contains("behaved differently from production"));
        Assert.That(await Outside.CountAsync("profiles", Tag), Is.Zero, "profiles of this test remain after its scope ended");
    }

    [Test]
    public async Task The_batch_endpoint_rolls_back_only_the_failing_items_and_leaves_nothing_after_the_test()
    {
        await CreateAsync(Name("taken"));

        var response = await Api.PostAsJsonAsync("/api/profiles/batch",
            new NewProfiles([Name("a"), Name("taken"), "  ", Name("b"), Name("a")]));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        var result = (await response.Content.ReadFromJsonAsync<BatchResult>())!;
        Assert.That(result.Created.Select(p => p.Name), Is.EqualTo(new[] { Name("a"), Name("b") }));
        Assert.That(result.Rejected.Select(r => r.Name), Is.EqualTo(new[] { Name("taken"), "  ", Name("a") }));

        using (var db = AppDb())
            Assert.That(await db.Profiles.OrderBy(p => p.Id).Select(p => p.Name).ToArrayAsync(), Is.EqualTo(new[] { Name("taken"), Name("a"), Name("b") }),
                "the items that failed were rolled back to their savepoints; the rest committed with the batch");
        Assert.That(Scope.Trace, Does.Match("(SAVEPOINT|SAVE TRANSACTION) item_1").And.Match("ROLLBACK (TO SAVEPOINT|TRANSACTION) item_1"));
        await EndScopeAndAssertNoProfilesLeftAsync();
    }

    [Test]
    public async Task A_missing_profile_is_404_with_problem_details()
    {
        var response = await Api.GetAsync("/api/profiles/987654321");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
    }

    [TestCase("/api/profiles", """{"name": ""}""")]
    [TestCase("/api/profiles", """{"name": "   "}""")]
    [TestCase("/api/profiles", """{}""")]
    [TestCase("/api/profiles", """{"name": "this name is far too long for a profile, the api takes at most one hundred characters and this one has more"}""")]
    [TestCase("/api/profiles", """{"name": """)]
    [TestCase("/api/profiles", """[1, 2]""")]
    [TestCase("/api/profiles/batch", """{"names": []}""")]
    [TestCase("/api/profiles/batch", """{}""")]
    public async Task Bad_input_is_400_with_problem_details(string path, string body)
    {
        var response = await Api.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), await response.Content.ReadAsStringAsync());
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
        await AssertEmptyAsync();
    }

    [Test]
    public async Task Concurrent_requests_of_one_test_take_turns_on_its_connection()
    {
        const int requests = 6;
        var responses = await Task.WhenAll(Enumerable.Range(1, requests).Select(r =>
            Api.PostAsJsonAsync("/api/profiles/batch", new NewProfiles([Name($"{r}-1"), Name($"{r}-2"), Name($"{r}-1")]))));

        foreach (var response in responses)
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        Assert.That(await ListAsync(), Has.Length.EqualTo(2 * requests));
        Assert.That(MaxTransactionDepth(Scope.Trace), Is.EqualTo(1), "no request's transaction began while another's was open:\n" + Scope.Trace);
    }

    /// <summary>How deep the application transactions recorded in a trace nest.</summary>
    static int MaxTransactionDepth(string trace)
    {
        int depth = 0, max = 0;
        foreach (Match match in TransactionEvent().Matches(trace))
        {
            depth += match.Groups["kind"].Value == "begin transaction" ? 1 : -1;
            max = Math.Max(max, depth);
        }

        return max;
    }

    [GeneratedRegex("(?<kind>begin transaction|commit|rollback) →")]
    private static partial Regex TransactionEvent();
}
